//! Just enough PEM and DER to read a public key from `jwt_source`: a SubjectPublicKeyInfo
//! (`PUBLIC KEY`), a PKCS#1 `RSA PUBLIC KEY`, or the subject key of an X.509 `CERTIFICATE`.
//! Certificates are not verified (the operator chose this key); only the key is taken.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A public key taken from PEM or DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Big-endian modulus and exponent, leading zeros stripped.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed point `04 || x || y` on P-256.
    EcP256(Vec<u8>),
    /// Uncompressed point `04 || x || y` on P-384.
    EcP384(Vec<u8>),
    /// The 32-byte Ed25519 key.
    Ed25519(Vec<u8>),
}

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CONTEXT_0: u8 = 0xA0;

/// Whether `bytes` start (after whitespace) with a PEM armour line.
pub(crate) fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
}

/// Reads a public key from PEM text or raw DER (SPKI, then certificate, then PKCS#1).
pub(crate) fn parse_public_key(bytes: &[u8]) -> Result<PublicKey, String> {
    if looks_like_pem(bytes) {
        let (label, der) = pem_first_block(bytes)?;
        return match label.as_str() {
            "PUBLIC KEY" => spki(&der),
            "RSA PUBLIC KEY" => pkcs1_rsa(&der),
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => certificate(&der),
            l if l.contains("PRIVATE KEY") => Err(format!(
                "a {l} was given; give the public key (or certificate), never the private key"
            )),
            l => Err(format!(
                "PEM block '{l}' is not a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE"
            )),
        };
    }
    spki(bytes)
        .or_else(|_| certificate(bytes))
        .or_else(|_| pkcs1_rsa(bytes))
        .map_err(|_| {
            "not a PEM or DER public key or certificate (SubjectPublicKeyInfo, PKCS#1 or X.509)"
                .to_owned()
        })
}

/// The label and decoded contents of the first PEM block.
fn pem_first_block(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "PEM text is not UTF-8".to_owned())?;
    let mut lines = text.lines().map(str::trim);
    let begin = lines
        .find(|l| !l.is_empty())
        .ok_or_else(|| "empty PEM".to_owned())?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| "bad PEM BEGIN line".to_owned())?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err("encrypted or annotated PEM is not supported".to_owned());
        }
        b64.push_str(line);
    }
    if !ended {
        return Err(format!("no '{end}' line"));
    }
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((label, der))
}

/// One DER element: its tag, its contents, and what follows it.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let err = || "truncated or invalid DER".to_owned();
    let (&tag, rest) = input.split_first().ok_or_else(err)?;
    let (&first, rest) = rest.split_first().ok_or_else(err)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(err());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(err());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), String> {
    let (tag, content, rest) = tlv(input)?;
    if tag != want {
        return Err(format!("DER: expected tag {want:#04x}, found {tag:#04x}"));
    }
    Ok((content, rest))
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }`.
fn spki(der: &[u8]) -> Result<PublicKey, String> {
    let (seq, trailing) = expect(der, TAG_SEQUENCE)?;
    if !trailing.is_empty() {
        return Err("trailing bytes after SubjectPublicKeyInfo".to_owned());
    }
    let (alg_id, rest) = expect(seq, TAG_SEQUENCE)?;
    let (bits, _) = expect(rest, TAG_BIT_STRING)?;
    let Some((0, key)) = bits.split_first() else {
        return Err("public key BIT STRING has unused bits".to_owned());
    };
    let (oid, params) = expect(alg_id, TAG_OID)?;
    match oid {
        OID_RSA => pkcs1_rsa(key),
        OID_EC => {
            let (curve, _) = expect(params, TAG_OID)?;
            match curve {
                OID_P256 if key.len() == 65 && key[0] == 4 => Ok(PublicKey::EcP256(key.to_vec())),
                OID_P384 if key.len() == 97 && key[0] == 4 => Ok(PublicKey::EcP384(key.to_vec())),
                OID_P256 | OID_P384 => Err("EC public key is not an uncompressed point".to_owned()),
                _ => Err("EC curve is not P-256 or P-384".to_owned()),
            }
        }
        OID_ED25519 if key.len() == 32 => Ok(PublicKey::Ed25519(key.to_vec())),
        OID_ED25519 => Err("Ed25519 public key is not 32 bytes".to_owned()),
        _ => Err("unsupported public key algorithm (RSA, EC P-256/P-384, Ed25519)".to_owned()),
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn pkcs1_rsa(der: &[u8]) -> Result<PublicKey, String> {
    let (seq, trailing) = expect(der, TAG_SEQUENCE)?;
    if !trailing.is_empty() {
        return Err("trailing bytes after RSAPublicKey".to_owned());
    }
    let (n, rest) = expect(seq, TAG_INTEGER)?;
    let (e, rest) = expect(rest, TAG_INTEGER)?;
    if !rest.is_empty() {
        return Err("RSAPublicKey has extra fields".to_owned());
    }
    Ok(PublicKey::Rsa {
        n: strip_zeros(n).to_vec(),
        e: strip_zeros(e).to_vec(),
    })
}

/// The subject public key of an X.509 certificate:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }`.
fn certificate(der: &[u8]) -> Result<PublicKey, String> {
    let (cert, _) = expect(der, TAG_SEQUENCE)?;
    let (tbs, _) = expect(cert, TAG_SEQUENCE)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == TAG_CONTEXT_0 {
        rest = after;
    }
    let (_, rest) = expect(rest, TAG_INTEGER)?; // serialNumber
    let (_, rest) = expect(rest, TAG_SEQUENCE)?; // signature
    let (_, rest) = expect(rest, TAG_SEQUENCE)?; // issuer
    let (_, rest) = expect(rest, TAG_SEQUENCE)?; // validity
    let (_, rest) = expect(rest, TAG_SEQUENCE)?; // subject
    let (tag, _, after) = tlv(rest)?;
    if tag != TAG_SEQUENCE {
        return Err("certificate has no subjectPublicKeyInfo".to_owned());
    }
    spki(&rest[..rest.len() - after.len()])
}

/// Strips leading zero bytes (DER integers carry one before a high bit).
pub(crate) fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().position(|b| *b != 0).unwrap();
            out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap());
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        der(TAG_SEQUENCE, &parts.concat())
    }

    fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
        let mut n_int = vec![0];
        n_int.extend_from_slice(n);
        let pkcs1 = seq(&[der(TAG_INTEGER, &n_int), der(TAG_INTEGER, e)]);
        let mut bits = vec![0];
        bits.extend_from_slice(&pkcs1);
        seq(&[
            seq(&[der(TAG_OID, OID_RSA), vec![0x05, 0x00]]),
            der(TAG_BIT_STRING, &bits),
        ])
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let body: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    }

    #[test]
    fn rsa_spki_pem_and_der() {
        let n = vec![0xC3; 256];
        let spki = rsa_spki(&n, &[1, 0, 1]);
        let want = PublicKey::Rsa {
            n: n.clone(),
            e: vec![1, 0, 1],
        };
        assert_eq!(parse_public_key(&spki).unwrap(), want);
        assert_eq!(
            parse_public_key(pem("PUBLIC KEY", &spki).as_bytes()).unwrap(),
            want
        );
    }

    #[test]
    fn ec_and_ed_spki() {
        let mut point = vec![4];
        point.extend_from_slice(&[7; 64]);
        let mut bits = vec![0];
        bits.extend_from_slice(&point);
        let spki = seq(&[
            seq(&[der(TAG_OID, OID_EC), der(TAG_OID, OID_P256)]),
            der(TAG_BIT_STRING, &bits),
        ]);
        assert_eq!(parse_public_key(&spki).unwrap(), PublicKey::EcP256(point));

        let mut bits = vec![0];
        bits.extend_from_slice(&[9; 32]);
        let spki = seq(&[
            seq(&[der(TAG_OID, OID_ED25519)]),
            der(TAG_BIT_STRING, &bits),
        ]);
        assert_eq!(
            parse_public_key(&spki).unwrap(),
            PublicKey::Ed25519(vec![9; 32])
        );
    }

    #[test]
    fn certificate_subject_key_is_taken() {
        let spki = rsa_spki(&[0xAB; 256], &[3]);
        let name = seq(&[]);
        let tbs = seq(&[
            der(TAG_CONTEXT_0, &der(TAG_INTEGER, &[2])),
            der(TAG_INTEGER, &[1]),
            seq(&[der(TAG_OID, OID_RSA)]),
            name.clone(),
            seq(&[]),
            name,
            spki,
        ]);
        let cert = seq(&[
            tbs,
            seq(&[der(TAG_OID, OID_RSA)]),
            der(TAG_BIT_STRING, &[0, 1]),
        ]);
        let want = PublicKey::Rsa {
            n: vec![0xAB; 256],
            e: vec![3],
        };
        assert_eq!(parse_public_key(&cert).unwrap(), want);
        assert_eq!(
            parse_public_key(pem("CERTIFICATE", &cert).as_bytes()).unwrap(),
            want
        );
    }

    #[test]
    fn refusals() {
        let spki = rsa_spki(&[0xC3; 256], &[1, 0, 1]);
        let e = parse_public_key(pem("PRIVATE KEY", &spki).as_bytes()).unwrap_err();
        assert!(e.contains("never the private key"), "{e}");
        assert!(parse_public_key(b"hello").is_err());
        assert!(parse_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n").is_err());
        assert!(parse_public_key(pem("PUBLIC KEY", b"\x30\x03\x02\x01").as_bytes()).is_err());
        let mut trailing = spki.clone();
        trailing.push(0);
        assert!(parse_public_key(&trailing).is_err());
        assert!(parse_public_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
