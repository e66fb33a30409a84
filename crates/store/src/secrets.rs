//! Secrets at rest: client secrets, registration access tokens and initial access tokens are
//! sealed with AES-256-GCM before they reach the database.
//!
//! The key is 32 bytes: `GATEHOUSE_SECRET_KEY` (64 hex characters) when set, else the file
//! `<data-dir>/secret.key`, created with mode 0600 on first start. A sealed value reads
//! `ghs1:<key id>:<base64(nonce || ciphertext || tag)>`; the key id (the first 8 hex characters of
//! the key's SHA-256) says which key sealed it, so a future key rotation can tell old from new.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};

use crate::StoreError;

const PREFIX: &str = "ghs1";

/// Seals and opens secrets with the process's key.
pub struct SecretBox {
    key: LessSafeKey,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox(key id {})", self.key_id)
    }
}

impl SecretBox {
    /// A box over a 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        let key_id = hex::encode(&Sha256::digest(key)[..4]);
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key fits AES-256");
        Self {
            key: LessSafeKey::new(unbound),
            key_id,
            rng: SystemRandom::new(),
        }
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
        let bytes: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
        Some(Self::from_key(&bytes))
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

    /// Opens a value sealed by [`SecretBox::seal`] with this key.
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
        if key_id != self.key_id {
            return Err(corrupt(
                "sealed with another key (GATEHOUSE_SECRET_KEY or secret.key changed)",
            ));
        }
        let raw = STANDARD_NO_PAD
            .decode(data)
            .map_err(|_| corrupt("bad base64"))?;
        if raw.len() < NONCE_LEN {
            return Err(corrupt("too short"));
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let mut buf = ct.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt("bad nonce"))?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.key_id.as_bytes()), &mut buf)
            .map_err(|_| corrupt("authentication failed"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt("not UTF-8"))
    }

    /// Whether a stored string is a sealed value.
    pub fn is_sealed(s: &str) -> bool {
        s.starts_with("ghs1:")
    }
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
