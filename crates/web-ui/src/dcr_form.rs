//! The Dynamic Client Registration fields, shared by the portal settings (*API Access* tab) and
//! a catalogue entry's *Settings* tab: how they are shown, read back, discovered and tested.

use std::time::Duration;

use serde_json::{Value, json};

use gatehouse_dcr::{ClientRequest, TestReport, discover, driver_for, test_connection};
use gatehouse_domain::ValidationError;
use gatehouse_domain::portal::{DcrOptions, KNOWN_AUTH_METHODS};

use crate::form::Form;

/// Domain field → form field, for the global settings (`dcr_options.*`).
pub const GLOBAL_TABLE: &[(&str, &str)] = &[
    ("enable_dcr", "enable_dcr"),
    ("signup_enabled", "signup_enabled"),
    ("max_clients_per_developer", "max_clients_per_developer"),
    ("dcr_options.provider", "dcr_provider"),
    ("dcr_options.grant_types", "dcr_grant_types"),
    ("dcr_options.response_types", "dcr_response_types"),
    (
        "dcr_options.token_endpoint_auth_method",
        "dcr_token_endpoint_auth_method",
    ),
    ("dcr_options.idp_host", "dcr_idp_host"),
    (
        "dcr_options.registration_endpoint",
        "dcr_registration_endpoint",
    ),
    ("dcr_options.access_token", "dcr_access_token"),
    ("dcr_options.token_endpoint", "dcr_token_endpoint"),
    ("dcr_options.jwks_uri", "dcr_jwks_uri"),
    ("dcr_options.scopes", "dcr_scopes"),
    (
        "dcr_options.registration_metadata",
        "dcr_registration_metadata",
    ),
    (
        "dcr_options.registration_client_uri_origins",
        "dcr_registration_client_uri_origins",
    ),
    ("issuer", "dcr_issuer"),
];

/// Domain field → form field, for a catalogue entry (`config.dcr_options.*`, plus the entry's
/// own fields).
pub const ENTRY_TABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("name", "name"),
    ("short_description", "short_description"),
    ("long_description", "long_description"),
    ("api_id", "api_id"),
    ("policy_id", "policy_id"),
    ("show", "show"),
    ("config.override", "override"),
    ("config.enable_dcr", "enable_dcr"),
    ("enable_dcr", "enable_dcr"),
    ("openapi", "openapi"),
    ("config.dcr_options.provider", "dcr_provider"),
    ("config.dcr_options.grant_types", "dcr_grant_types"),
    ("config.dcr_options.response_types", "dcr_response_types"),
    (
        "config.dcr_options.token_endpoint_auth_method",
        "dcr_token_endpoint_auth_method",
    ),
    ("config.dcr_options.idp_host", "dcr_idp_host"),
    (
        "config.dcr_options.registration_endpoint",
        "dcr_registration_endpoint",
    ),
    ("config.dcr_options.access_token", "dcr_access_token"),
    ("config.dcr_options.token_endpoint", "dcr_token_endpoint"),
    ("config.dcr_options.jwks_uri", "dcr_jwks_uri"),
    ("config.dcr_options.scopes", "dcr_scopes"),
    (
        "config.dcr_options.registration_metadata",
        "dcr_registration_metadata",
    ),
    (
        "config.dcr_options.registration_client_uri_origins",
        "dcr_registration_client_uri_origins",
    ),
    // errors of driver_for / the connection test name `dcr_options.*`
    ("dcr_options.provider", "dcr_provider"),
    ("dcr_options.grant_types", "dcr_grant_types"),
    ("dcr_options.response_types", "dcr_response_types"),
    (
        "dcr_options.token_endpoint_auth_method",
        "dcr_token_endpoint_auth_method",
    ),
    ("dcr_options.idp_host", "dcr_idp_host"),
    (
        "dcr_options.registration_endpoint",
        "dcr_registration_endpoint",
    ),
    ("dcr_options.access_token", "dcr_access_token"),
    ("dcr_options.token_endpoint", "dcr_token_endpoint"),
    ("dcr_options.scopes", "dcr_scopes"),
    (
        "dcr_options.registration_metadata",
        "dcr_registration_metadata",
    ),
    (
        "dcr_options.registration_client_uri_origins",
        "dcr_registration_client_uri_origins",
    ),
    ("issuer", "dcr_issuer"),
];

/// The choices of the select and checkbox fields.
pub fn choices() -> Value {
    json!({
        "providers": [["okta", "Okta"], ["keycloak", "Keycloak"], ["gluu", "Gluu"], ["other", "Other"]],
        "grant_types": [["client_credentials", "Client Credentials"],
                        ["authorization_code", "Authorization Code"],
                        ["refresh_token", "Refresh Token"], ["implicit", "Implicit"]],
        "response_types": [["code", "Code"], ["token", "Token"]],
        "auth_methods": KNOWN_AUTH_METHODS.iter().map(|m| json!([m, auth_label(m)])).collect::<Vec<_>>(),
    })
}

fn auth_label(m: &str) -> &'static str {
    match m {
        "client_secret_basic" => "Client Secret - Basic",
        "client_secret_post" => "Client Secret - Post",
        "client_secret_jwt" => "Client Secret - JWT",
        "private_key_jwt" => "Private Key - JWT",
        _ => "None",
    }
}

/// The template's view of stored settings (the token only as `access_token_set`).
pub fn view_from_options(o: &DcrOptions) -> Value {
    json!({
        "provider": o.provider.as_str(),
        "grant_types": o.grant_types,
        "response_types": o.response_types,
        "token_endpoint_auth_method": if o.token_endpoint_auth_method.is_empty() { "client_secret_basic" } else { o.token_endpoint_auth_method.as_str() },
        "idp_host": o.idp_host,
        "registration_endpoint": o.registration_endpoint,
        "access_token_set": !o.access_token.is_empty(),
        "token_endpoint": o.token_endpoint,
        "jwks_uri": o.jwks_uri,
        "scopes": o.scopes,
        "registration_metadata": metadata_text(&o.registration_metadata),
        "registration_client_uri_origins": o.registration_client_uri_origins.join(" "),
        "issuer": "",
        "typed_token": "",
    })
}

/// The registration metadata as the textarea shows it (pretty JSON, empty when there is none).
fn metadata_text(m: &serde_json::Map<String, Value>) -> String {
    if m.is_empty() {
        String::new()
    } else {
        serde_json::to_string_pretty(m).unwrap_or_default()
    }
}

/// The registration metadata typed in the form: `{}` when blank, or why it is not a JSON object.
pub fn metadata_from_form(f: &Form) -> Result<serde_json::Map<String, Value>, String> {
    let text = f.raw("dcr_registration_metadata").trim();
    if text.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(
            "enter a JSON object, e.g. {\"pol\": \"{policy_id}\"}, or leave it blank".to_owned(),
        ),
        Err(e) => Err(format!("this is not valid JSON: {e}")),
    }
}

/// The template's view of what the form sent (typed values kept, including a token typed in
/// this very request; the stored token is never put back into the page).
pub fn view_from_form(f: &Form, stored_token_set: bool) -> Value {
    json!({
        "provider": f.text("dcr_provider"),
        "grant_types": f.all("dcr_grant_types"),
        "response_types": f.all("dcr_response_types"),
        "token_endpoint_auth_method": f.text("dcr_token_endpoint_auth_method"),
        "idp_host": f.text("dcr_idp_host"),
        "registration_endpoint": f.text("dcr_registration_endpoint"),
        "access_token_set": stored_token_set && !f.checked("dcr_clear_access_token"),
        "token_endpoint": f.text("dcr_token_endpoint"),
        "jwks_uri": f.text("dcr_jwks_uri"),
        "scopes": f.text("dcr_scopes"),
        "registration_metadata": f.raw("dcr_registration_metadata").trim(),
        "registration_client_uri_origins": f.text("dcr_registration_client_uri_origins"),
        "issuer": f.text("dcr_issuer"),
        "typed_token": f.raw("dcr_access_token").trim(),
    })
}

/// The `dcr_options` JSON to save: `base` (the stored settings, so fields without a form field
/// are kept) with the form's values. An empty token field leaves `access_token` out, which keeps
/// the stored token. Registration metadata that is not a JSON object keeps the stored one (the
/// caller shows [`metadata_from_form`]'s error).
pub fn options_json(f: &Form, base: &DcrOptions) -> Value {
    let mut v = serde_json::to_value(base).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.remove("access_token_set");
        m.insert("provider".into(), json!(f.text("dcr_provider")));
        m.insert("grant_types".into(), json!(f.all("dcr_grant_types")));
        m.insert("response_types".into(), json!(f.all("dcr_response_types")));
        m.insert(
            "token_endpoint_auth_method".into(),
            json!(f.text("dcr_token_endpoint_auth_method")),
        );
        for k in [
            "idp_host",
            "registration_endpoint",
            "token_endpoint",
            "jwks_uri",
            "scopes",
        ] {
            m.insert(k.into(), json!(f.text(&format!("dcr_{k}"))));
        }
        if f.has("dcr_registration_metadata")
            && let Ok(meta) = metadata_from_form(f)
        {
            m.insert("registration_metadata".into(), Value::Object(meta));
        }
        if f.has("dcr_registration_client_uri_origins") {
            let origins: Vec<&str> = f
                .raw("dcr_registration_client_uri_origins")
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|o| !o.is_empty())
                .collect();
            m.insert("registration_client_uri_origins".into(), json!(origins));
        }
        let typed = f.raw("dcr_access_token").trim();
        if !typed.is_empty() {
            m.insert("access_token".into(), json!(typed));
        }
        if f.checked("dcr_clear_access_token") && typed.is_empty() {
            m.insert("clear_access_token".into(), json!(true));
        }
    }
    v
}

/// Settings to test: the form's, with the stored token when none was typed.
pub fn options_for_test(f: &Form, stored: &DcrOptions) -> Result<DcrOptions, ValidationError> {
    let v = options_json(f, stored);
    let mut o: DcrOptions = serde_json::from_value(v)
        .map_err(|e| ValidationError::new("dcr_options.provider", e.to_string()))?;
    if o.access_token.is_empty() && !f.checked("dcr_clear_access_token") {
        o.access_token = stored.access_token.clone();
    }
    Ok(o.normalized())
}

/// Discovery: reads the issuer's OpenID configuration and fills the endpoint fields of `view`
/// (the host too when empty). Returns where the document was read, or the error to show next
/// to the issuer field.
pub async fn discover_into(
    view: &mut Value,
    issuer: &str,
    timeout: Duration,
) -> Result<String, String> {
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
        return Err(
            "enter the IdP's issuer URL, e.g. https://acme.okta.com/oauth2/default".to_owned(),
        );
    }
    let d = discover(issuer, timeout, false)
        .await
        .map_err(|e| e.public_message())?;
    if let Value::Object(m) = view {
        for (k, found) in [
            ("registration_endpoint", &d.registration_endpoint),
            ("token_endpoint", &d.token_endpoint),
            ("jwks_uri", &d.jwks_uri),
        ] {
            if let Some(u) = found {
                m.insert(k.into(), json!(u));
            }
        }
        let host_empty = m
            .get("idp_host")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if host_empty && let Ok(u) = url::Url::parse(issuer) {
            let origin = u.origin().ascii_serialization();
            m.insert("idp_host".into(), json!(origin));
        }
    }
    Ok(d.document_url)
}

/// The connection test: registers a throwaway client with `options` and deletes it again.
pub async fn run_test(
    options: &DcrOptions,
    timeout: Duration,
) -> Result<TestReport, ValidationError> {
    let driver = driver_for(options, timeout)?;
    let name = format!(
        "gatehouse-connection-test-{}",
        &gatehouse_domain::ids::new_id()[..8]
    );
    let req = ClientRequest::from_options(name, Vec::new(), options);
    Ok(test_connection(driver.as_ref(), &req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::portal::Secret;

    #[test]
    fn the_token_is_write_only() {
        let stored = DcrOptions {
            access_token: Secret::new("stored-token"),
            registration_endpoint: "http://idp/reg".into(),
            registration_metadata: serde_json::from_value(json!({"pol": "{policy_id}"})).unwrap(),
            ..Default::default()
        };
        let view = view_from_options(&stored);
        assert_eq!(view["access_token_set"], json!(true));
        assert!(!view.to_string().contains("stored-token"));

        let f = Form::parse(b"dcr_provider=okta&dcr_grant_types=client_credentials&dcr_registration_endpoint=http://idp/reg2&dcr_access_token=");
        let v = options_json(&f, &stored);
        assert!(
            v.get("access_token").is_none(),
            "empty keeps the stored one"
        );
        assert_eq!(v["registration_endpoint"], json!("http://idp/reg2"));
        assert_eq!(v["registration_metadata"], json!({"pol": "{policy_id}"}));
        assert_eq!(v["provider"], json!("okta"));

        // The metadata field, when sent, replaces the stored metadata (blank clears it).
        let f = Form::parse(
            b"dcr_provider=okta&dcr_registration_metadata=%7B%22team%22%3A%22{developer_id}%22%7D",
        );
        assert_eq!(
            options_json(&f, &stored)["registration_metadata"],
            json!({"team": "{developer_id}"})
        );
        let f = Form::parse(b"dcr_provider=okta&dcr_registration_metadata=");
        assert_eq!(
            options_json(&f, &stored)["registration_metadata"],
            json!({})
        );
        let f = Form::parse(b"dcr_registration_metadata=%5B1%5D");
        assert!(metadata_from_form(&f).unwrap_err().contains("JSON object"));
        let f = Form::parse(b"dcr_registration_metadata=%7Bnope");
        assert!(
            metadata_from_form(&f)
                .unwrap_err()
                .contains("not valid JSON")
        );

        // Client URI origins: separated by spaces, commas or lines; kept when the field is absent.
        let f = Form::parse(
            b"dcr_provider=keycloak&dcr_registration_client_uri_origins=https://a.example,+https://b.example%0Ahttp://c:8080",
        );
        assert_eq!(
            options_json(&f, &stored)["registration_client_uri_origins"],
            json!(["https://a.example", "https://b.example", "http://c:8080"])
        );
        let listed = DcrOptions {
            registration_client_uri_origins: vec!["https://a.example".into()],
            ..stored.clone()
        };
        assert_eq!(
            view_from_options(&listed)["registration_client_uri_origins"],
            json!("https://a.example")
        );
        let f = Form::parse(b"dcr_provider=keycloak");
        assert_eq!(
            options_json(&f, &listed)["registration_client_uri_origins"],
            json!(["https://a.example"])
        );
        assert_eq!(
            crate::form::form_field_for(
                "config.dcr_options.registration_client_uri_origins.1",
                ENTRY_TABLE
            ),
            Some("dcr_registration_client_uri_origins")
        );

        let f = Form::parse(b"dcr_access_token=+new+&dcr_provider=other");
        assert_eq!(options_json(&f, &stored)["access_token"], json!("new"));
        let f = Form::parse(b"dcr_clear_access_token=on&dcr_provider=other");
        assert_eq!(options_json(&f, &stored)["clear_access_token"], json!(true));

        let f = Form::parse(b"dcr_provider=keycloak&dcr_registration_endpoint=http://idp/reg");
        let o = options_for_test(&f, &stored).unwrap();
        assert_eq!(o.access_token.expose(), "stored-token");
    }

    #[test]
    fn every_form_field_has_a_domain_field() {
        for (_, form) in GLOBAL_TABLE.iter().chain(ENTRY_TABLE) {
            assert!(!form.is_empty());
        }
        assert_eq!(
            crate::form::form_field_for("config.dcr_options.grant_types.0", ENTRY_TABLE),
            Some("dcr_grant_types")
        );
        assert_eq!(
            crate::form::form_field_for("dcr_options.registration_endpoint", GLOBAL_TABLE),
            Some("dcr_registration_endpoint")
        );
    }
}
