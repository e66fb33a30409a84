//! Secrets at rest: client secrets, registration access tokens and initial access tokens are
//! sealed with AES-256-GCM before they reach the database.
//!
//! The key is 32 bytes: `GATEHOUSE_SECRET_KEY` (64 hex characters) when set, else the file
//! `<data-dir>/secret.key`, created with mode 0600 on first start. A sealed value reads
//! `ghs1:<key id>:<base64(nonce || ciphertext || tag)>`; the key id (the first 8 hex characters of
//! the key's SHA-256) says which key sealed it.
//!
//! # Key rotation
//! Previous keys open old values but never seal: `GATEHOUSE_SECRET_KEY_PREVIOUS` (comma-separated
//! hex keys) and the file `<data-dir>/secret.key.previous` (one hex key per line).
//! `gatehouse secrets rotate-key` makes a new key current (the old one moves to
//! `secret.key.previous`) and re-seals every stored secret with it; `gatehouse secrets reseal`
//! re-seals whatever an older key sealed (after changing `GATEHOUSE_SECRET_KEY`). See
//! [`SecretBox::reseal`].

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};

use crate::StoreError;

const PREFIX: &str = "ghs1";

/// Seals with the current key; opens with the current key or a previous one.
pub struct SecretBox {
    key: LessSafeKey,
    key_id: String,
    previous: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

/// The environment variable with previous keys (comma-separated hex).
pub const PREVIOUS_KEYS_ENV: &str = "GATEHOUSE_SECRET_KEY_PREVIOUS";
/// The file with previous keys in the data directory (one hex key per line).
pub const PREVIOUS_KEYS_FILE: &str = "secret.key.previous";

fn key_id_of(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key fits AES-256"))
}

fn parse_hex_key(s: &str) -> Option<[u8; 32]> {
    hex::decode(s.trim()).ok()?.try_into().ok()
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox(key id {})", self.key_id)
    }
}

impl SecretBox {
    /// A box over a 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            key: aead_key(key),
            key_id: key_id_of(key),
            previous: Vec::new(),
            rng: SystemRandom::new(),
        }
    }

    /// Adds keys that open (never seal) values sealed before a rotation.
    pub fn with_previous(mut self, keys: &[[u8; 32]]) -> Self {
        for k in keys {
            let id = key_id_of(k);
            if id != self.key_id && !self.previous.iter().any(|(p, _)| *p == id) {
                self.previous.push((id, aead_key(k)));
            }
        }
        self
    }

    /// The current key's id (as written in sealed values).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The ids of the previous keys.
    pub fn previous_key_ids(&self) -> Vec<&str> {
        self.previous.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The previous keys named by `GATEHOUSE_SECRET_KEY_PREVIOUS` (`env`) and
    /// `<data_dir>/secret.key.previous`.
    pub fn previous_keys(data_dir: &Path, env: Option<&str>) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut keys = Vec::new();
        for k in env
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
        {
            keys.push(parse_hex_key(k).ok_or_else(|| {
                StoreError::Database(format!(
                    "{PREVIOUS_KEYS_ENV} must list 64-hex-character keys separated by commas"
                ))
            })?);
        }
        let path = data_dir.join(PREVIOUS_KEYS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    keys.push(parse_hex_key(line).ok_or_else(|| {
                        StoreError::Database(format!(
                            "{} line {}: not a 64-hex-character key",
                            path.display(),
                            i + 1
                        ))
                    })?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Database(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        }
        Ok(keys)
    }

    /// A sealed value re-sealed with the current key, or `None` when the current key sealed it
    /// already. Fails when no known key opens it.
    pub fn reseal(&self, sealed: &str) -> Result<Option<String>, StoreError> {
        let current = sealed
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.starts_with(&format!("{}:", self.key_id)));
        if current {
            return Ok(None);
        }
        Ok(Some(self.seal(&self.open(sealed)?)))
    }

    /// The key from `env_key` (hex) when given, else from `<data_dir>/secret.key`, created on first
    /// use with a random key.
    pub fn load_or_create(data_dir: &Path, env_key: Option<&str>) -> Result<Self, StoreError> {
        if let Some(hex_key) = env_key.filter(|k| !k.is_empty()) {
            return Self::from_hex(hex_key.trim()).ok_or_else(|| {
                StoreError::Database(
                    "GATEHOUSE_SECRET_KEY must be 64 hex characters (32 bytes); \
                     generate one with `openssl rand -hex 32`"
                        .to_owned(),
                )
            });
        }
        let path = data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(text.trim()).ok_or_else(|| {
                StoreError::Database(format!(
                    "{} does not hold a 64-hex-character key; restore it from a backup \
                     (secrets sealed with another key cannot be read)",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| StoreError::Database("no system randomness".to_owned()))?;
                write_private(&path, &hex::encode(key)).map_err(|e| {
                    StoreError::Database(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(StoreError::Database(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn from_hex(s: &str) -> Option<Self> {
        Some(Self::from_key(&parse_hex_key(s)?))
    }

    /// Seals `plaintext`.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.key_id.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{PREFIX}:{}:{}", self.key_id, STANDARD_NO_PAD.encode(out))
    }

    /// Opens a value sealed by [`SecretBox::seal`] with the current or a previous key.
    pub fn open(&self, sealed: &str) -> Result<String, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt {
            id: "sealed secret".to_owned(),
            reason: why.to_owned(),
        };
        let mut parts = sealed.splitn(3, ':');
        let (Some(PREFIX), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt("not a sealed value"));
        };
        let key = if key_id == self.key_id {
            &self.key
        } else if let Some((_, k)) = self.previous.iter().find(|(id, _)| id == key_id) {
            k
        } else {
            return Err(corrupt(
                "sealed with an unknown key: GATEHOUSE_SECRET_KEY or secret.key changed; \
                 list the old key in GATEHOUSE_SECRET_KEY_PREVIOUS or secret.key.previous",
            ));
        };
        let raw = STANDARD_NO_PAD
            .decode(data)
            .map_err(|_| corrupt("bad base64"))?;
        if raw.len() < NONCE_LEN {
            return Err(corrupt("too short"));
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let mut buf = ct.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt("bad nonce"))?;
        let plain = key
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut buf)
            .map_err(|_| corrupt("authentication failed"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt("not UTF-8"))
    }

    /// Whether a stored string is a sealed value.
    pub fn is_sealed(s: &str) -> bool {
        s.starts_with("ghs1:")
    }
}

/// Rotates the key file of `data_dir`: a new random key becomes `secret.key` and the old one is
/// appended to `secret.key.previous` first, so a crash in between loses no key. Returns the box
/// of the new key that still opens values sealed by every previous key. The caller then
/// re-seals the stored secrets ([`SecretBox::reseal`]).
pub fn rotate_key_file(data_dir: &Path) -> Result<SecretBox, StoreError> {
    let path = data_dir.join("secret.key");
    let io = |what: &str, e: std::io::Error| StoreError::Database(format!("{what}: {e}"));
    let old_text = std::fs::read_to_string(&path)
        .map_err(|e| io(&format!("cannot read {}", path.display()), e))?;
    let old = parse_hex_key(&old_text).ok_or_else(|| {
        StoreError::Database(format!(
            "{} does not hold a 64-hex-character key",
            path.display()
        ))
    })?;
    let mut new = [0u8; 32];
    SystemRandom::new()
        .fill(&mut new)
        .map_err(|_| StoreError::Database("no system randomness".to_owned()))?;
    // 1. Keep the old key (append; the file is private).
    let prev = data_dir.join(PREVIOUS_KEYS_FILE);
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&prev)
            .map_err(|e| io(&format!("cannot open {}", prev.display()), e))?;
        writeln!(f, "{}", hex::encode(old))
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&format!("cannot write {}", prev.display()), e))?;
    }
    // 2. Replace the current key atomically.
    let tmp = data_dir.join("secret.key.new");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, &hex::encode(new))
        .map_err(|e| io(&format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| io(&format!("cannot replace {}", path.display()), e))?;
    let previous = SecretBox::previous_keys(data_dir, None)?;
    Ok(SecretBox::from_key(&new).with_previous(&previous))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let b = SecretBox::from_key(&[7u8; 32]);
        let s = b.seal("client-secret-123");
        assert!(SecretBox::is_sealed(&s));
        assert!(!s.contains("client-secret-123"));
        assert_ne!(s, b.seal("client-secret-123"), "fresh nonce each time");
        assert_eq!(b.open(&s).unwrap(), "client-secret-123");
        let mut tampered = s.clone();
        tampered.pop();
        tampered.push('A');
        assert!(b.open(&tampered).is_err());
        let other = SecretBox::from_key(&[8u8; 32]);
        assert!(other.open(&s).is_err());
        assert!(b.open("plain").is_err());
    }

    #[test]
    fn previous_keys_open_old_values_and_reseal_moves_them_to_the_current_key() {
        let old = SecretBox::from_key(&[1u8; 32]);
        let sealed = old.seal("iat-123");
        let new = SecretBox::from_key(&[2u8; 32]);
        assert!(
            new.open(&sealed)
                .unwrap_err()
                .to_string()
                .contains("unknown key")
        );
        let ring = SecretBox::from_key(&[2u8; 32]).with_previous(&[[1u8; 32], [2u8; 32]]);
        assert_eq!(ring.previous_key_ids(), vec![old.key_id()]);
        assert_eq!(ring.open(&sealed).unwrap(), "iat-123");
        let moved = ring.reseal(&sealed).unwrap().unwrap();
        assert!(moved.starts_with(&format!("ghs1:{}:", new.key_id())));
        assert_eq!(new.open(&moved).unwrap(), "iat-123");
        assert_eq!(ring.reseal(&moved).unwrap(), None, "current values stay");
        assert!(new.reseal(&sealed).is_err(), "no key opens it");
    }

    #[test]
    fn rotating_the_key_file_keeps_the_old_key_as_previous() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::load_or_create(dir.path(), None).unwrap();
        let sealed = first.seal("secret");
        let ring = rotate_key_file(dir.path()).unwrap();
        assert_ne!(ring.key_id(), first.key_id());
        assert_eq!(ring.previous_key_ids(), vec![first.key_id()]);
        assert_eq!(ring.open(&sealed).unwrap(), "secret");
        // A restart loads the new key, and the old one from secret.key.previous.
        let loaded = SecretBox::load_or_create(dir.path(), None)
            .unwrap()
            .with_previous(&SecretBox::previous_keys(dir.path(), None).unwrap());
        assert_eq!(loaded.key_id(), ring.key_id());
        assert_eq!(loaded.open(&sealed).unwrap(), "secret");
        // Twice: both old keys are kept.
        let again = rotate_key_file(dir.path()).unwrap();
        assert_eq!(again.previous_key_ids().len(), 2);
        assert_eq!(again.open(&sealed).unwrap(), "secret");
        assert!(!dir.path().join("secret.key.new").exists());
        // Bad previous keys are named.
        assert!(SecretBox::previous_keys(dir.path(), Some("nothex")).is_err());
        let k = "33".repeat(32);
        assert_eq!(
            SecretBox::previous_keys(dir.path(), Some(&format!("{k},{k}")))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(dir.path(), None).unwrap();
        let sealed = a.seal("x");
        let b = SecretBox::load_or_create(dir.path(), None).unwrap();
        assert_eq!(b.open(&sealed).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(SecretBox::load_or_create(dir.path(), Some("zz")).is_err());
        let hex_key = "11".repeat(32);
        let c = SecretBox::load_or_create(dir.path(), Some(&hex_key)).unwrap();
        assert_eq!(c.open(&c.seal("y")).unwrap(), "y");
    }
}
