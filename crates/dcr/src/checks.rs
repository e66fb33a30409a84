//! Checks of what an IdP hands back before Gatehouse stores it or puts it in a URL: the client
//! id ([`check_client_id`]) and the RFC 7592 `registration_client_uri`
//! ([`ManagementOrigins`]).
//!
//! The client id becomes a database key, a path segment of the portal's and the admin API's
//! URLs, and (Okta, the Keycloak fallback) a path segment of the IdP's management URLs. The
//! client URI is where Gatehouse later sends the client's registration access token, so an IdP
//! (or whatever answers in its place) must not be able to point it at another server.

/// Longest client id accepted. Real ids are far shorter: Okta 20 characters, UUIDs 36, Gluu
/// inums about 60.
pub const MAX_CLIENT_ID_LEN: usize = 255;

/// Whether `id` is a client id Gatehouse stores and puts in URLs: 1 to [`MAX_CLIENT_ID_LEN`]
/// characters, each an ASCII letter or digit or one of `-._~!$&'()*+,;=:@` (RFC 3986 `pchar`
/// without percent-encoding), and not `.` or `..` (dot segments). This admits what real IdPs
/// issue (Okta `0oa…`, UUIDs, Keycloak client names, Gluu inums such as `@!1A2B.3C4D!0001!…`,
/// random base64url ids) and refuses slashes, `?`, `#`, `%`, spaces, quotes, brackets and
/// control or non-ASCII characters. The error says what is wrong without repeating a long id.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the client id is empty".to_owned());
    }
    if id.len() > MAX_CLIENT_ID_LEN {
        return Err(format!(
            "the client id is {} bytes long (at most {MAX_CLIENT_ID_LEN})",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("the client id '{id}' is a dot segment"));
    }
    if let Some(c) = id.chars().find(|c| !is_id_char(*c)) {
        return Err(format!(
            "the client id {} contains {c:?}, which Gatehouse does not accept in client ids \
             (letters, digits and -._~!$&'()*+,;=:@ only)",
            shown(id)
        ));
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

/// Whether `id` can be a path segment of a management URL (it is percent-encoded there, but
/// `.` and `..` would be dropped or climb).
pub(crate) fn is_path_segment(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".."
}

/// `s` quoted for a message: escaped, and cut after 40 characters.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// The origins a `registration_client_uri` may be on: the registration endpoint's, plus the
/// ones configured in `dcr_options.registration_client_uri_origins`.
#[derive(Debug, Clone)]
pub(crate) struct ManagementOrigins {
    /// The registration endpoint's origin first.
    allowed: Vec<url::Origin>,
}

impl ManagementOrigins {
    /// The origins for a driver registering at `registration_endpoint`; `extra` entries that do
    /// not parse are skipped (the settings were validated before).
    pub(crate) fn new(registration_endpoint: &str, extra: &[String]) -> Self {
        let allowed = std::iter::once(registration_endpoint)
            .chain(extra.iter().map(String::as_str))
            .filter_map(|u| url::Url::parse(u.trim()).ok())
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple)
            .collect();
        Self { allowed }
    }

    /// Whether `uri` is an http(s) URL on one of the allowed origins; the error explains why not
    /// and how to allow another origin.
    pub(crate) fn check(&self, uri: &str) -> Result<(), String> {
        let parsed = url::Url::parse(uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        let Some(parsed) = parsed else {
            return Err(format!(
                "the registration_client_uri {} is not an http(s) URL",
                shown(uri)
            ));
        };
        let origin = parsed.origin();
        if self.allowed.contains(&origin) {
            return Ok(());
        }
        let expected = self
            .allowed
            .first()
            .map_or_else(|| "(none)".to_owned(), url::Origin::ascii_serialization);
        Err(format!(
            "the registration_client_uri is on {}, not on the registration endpoint's origin {expected}, \
             so Gatehouse will not send the client's registration access token there; if that \
             address belongs to the identity provider, add it to \
             dcr_options.registration_client_uri_origins",
            origin.ascii_serialization()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_real_idps_issue_are_accepted() {
        for id in [
            "0oa1b2c3d4e5f6g7h8i9",                                          // Okta
            "9fee4b6e-6216-4e48-8839-dec2de38ac22", // Keycloak (DCR), UUIDs
            "my-service.prod_v2",                   // Keycloak, chosen
            "urn:acme:svc",                         // chosen, with colons
            "@!F2B4.C6A1.1B3A.96C8!0001!9A5E.C1D6!0008!FB1D.6E0C.5D9A.8C2F", // Gluu 3/4 inum
            "1801.d5b9a1d7-8c3b-4b4f-9a2f-4d1b1c6c8e9a", // Janssen inum
            "V1StGXR8_Z5jdHi6B-myT",                // oidc-provider (nanoid)
            "client+one=two;three,four*(x)$&'~",
            &"a".repeat(MAX_CLIENT_ID_LEN),
        ] {
            assert_eq!(check_client_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn client_ids_that_break_urls_or_storage_are_refused() {
        for (id, says) in [
            ("", "empty"),
            (".", "dot segment"),
            ("..", "dot segment"),
            ("../admin", "'/'"),
            ("a/b", "'/'"),
            ("a\\b", "'\\\\'"),
            ("a?b=1", "'?'"),
            ("a#frag", "'#'"),
            ("a%2Fb", "'%'"),
            ("a b", "' '"),
            ("a\tb", "'\\t'"),
            ("a\nb", "'\\n'"),
            ("a\u{0}b", "'\\0'"),
            ("<script>", "'<'"),
            ("a\"b", "'\"'"),
            ("a`b", "'`'"),
            ("a[0]", "'['"),
            ("a{b}", "'{'"),
            ("a|b", "'|'"),
            ("a^b", "'^'"),
            ("café", "'é'"),
            ("a\u{202e}b", "'\\u{202e}'"),
        ] {
            let e = check_client_id(id).unwrap_err();
            assert!(e.contains(says), "{id:?}: {e}");
        }
        let long = "a".repeat(MAX_CLIENT_ID_LEN + 1);
        let e = check_client_id(&long).unwrap_err();
        assert!(e.contains("256 bytes") && e.contains("at most 255"), "{e}");
        // A long bad id is not repeated whole.
        let e = check_client_id(&format!("{}/", "b".repeat(10_000))).unwrap_err();
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn client_uris_must_be_on_an_allowed_origin() {
        let o = ManagementOrigins::new(
            "https://idp.example/realms/r/clients-registrations/openid-connect",
            &[],
        );
        for ok in [
            "https://idp.example/realms/r/clients-registrations/openid-connect/abc",
            "https://idp.example:443/other/path?client_id=abc",
            "https://IDP.example/x",
        ] {
            assert_eq!(o.check(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("https://evil.example/reg/abc", "is on https://evil.example"),
            ("http://idp.example/reg/abc", "is on http://idp.example"),
            (
                "https://idp.example:8443/reg/abc",
                "is on https://idp.example:8443",
            ),
            (
                "https://idp.example.evil.example/reg",
                "is on https://idp.example.evil.example",
            ),
            (
                "https://idp.example@evil.example/reg",
                "is on https://evil.example",
            ),
            ("file:///etc/passwd", "not an http(s) URL"),
            ("javascript:alert(1)", "not an http(s) URL"),
            ("/relative/abc", "not an http(s) URL"),
            ("", "not an http(s) URL"),
        ] {
            let e = o.check(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = o.check("https://evil.example/x").unwrap_err();
        assert!(
            e.contains("https://idp.example") && e.contains("registration_client_uri_origins"),
            "{e}"
        );

        let o = ManagementOrigins::new(
            "http://keycloak.internal:8080/realms/r/clients-registrations/openid-connect",
            &["https://auth.example.com/".into(), "not a url".into()],
        );
        assert_eq!(o.check("https://auth.example.com/realms/r/x/abc"), Ok(()));
        assert_eq!(o.check("http://keycloak.internal:8080/x"), Ok(()));
        assert!(o.check("https://auth.example.com:8443/x").is_err());
    }
}
