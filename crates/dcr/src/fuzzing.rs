//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default). They feed
//! an IdP's answer, as raw bytes, through the same reading and checks the drivers do.

use gatehouse_domain::portal::{Provider, Secret};
use serde_json::Value;

use crate::checks::{ManagementOrigins, check_client_id};
use crate::error::Action;
use crate::http::Reply;
use crate::wire::{ClientHandle, ClientInformation};

/// Reads `body` as the IdP's answer with `status` to every action of every provider: the
/// success path (`ClientInformation` → `Registration`) and the error path (`failure`,
/// `describe`). `sent` is the credential the call used; it must never appear in an error's
/// public message. Panics if an invariant breaks.
pub fn read_answer(status: u16, body: &[u8], sent: Option<&str>) {
    let reply = Reply::from_bytes(status, body, sent.map(Secret::new));
    let (error, description) = reply.describe();
    assert!(!description.is_empty());
    if let Some(s) = sent.filter(|s| s.len() >= 4 && !"[redacted]".contains(*s)) {
        assert!(
            !description.contains(s),
            "the credential leaks into the description"
        );
        assert!(!error.as_deref().unwrap_or("").contains(s));
    }
    for provider in [
        Provider::Okta,
        Provider::Keycloak,
        Provider::Gluu,
        Provider::Other,
    ] {
        for action in [Action::Register, Action::Read, Action::RotateSecret] {
            let e = reply.failure(provider, action, "200");
            let _ = (e.public_message(), e.http_status(), e.is_refusal());
        }
    }
    if let Ok(v) = reply.json_body("registration")
        && let Ok(info) = ClientInformation::from_json(v)
    {
        assert!(!info.client_id.trim().is_empty());
        if check_client_id(&info.client_id).is_ok() {
            assert!(info.client_id.len() <= crate::MAX_CLIENT_ID_LEN);
            assert!(!info.client_id.contains(['/', '?', '#', '%']));
        }
        if let Some(uri) = &info.registration_client_uri {
            let origins = ManagementOrigins::new("https://idp.test/register", &[]);
            if origins.check(uri).is_ok() {
                let u = url::Url::parse(uri).expect("an accepted client URI parses");
                assert_eq!(u.host_str(), Some("idp.test"));
                assert_eq!(u.scheme(), "https");
            }
        }
        let mut prev = ClientHandle::new("previous-client");
        prev.registration_client_uri = Some("https://idp.test/register/x".to_owned());
        let reg = info.clone().into_registration(Some(&prev));
        assert_eq!(reg.client_id, info.client_id);
        assert!(
            reg.registration_client_uri.is_some(),
            "falls back to previous"
        );
        assert_eq!(
            reg.metadata["client_id"],
            Value::from(reg.client_id.clone())
        );
        let reg = info.into_registration(None);
        let _ = reg.secret_expired(0);
        let _ = reg.handle();
    }
}
