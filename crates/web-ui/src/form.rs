//! HTML form bodies (`application/x-www-form-urlencoded`, repeated names for checkboxes), the
//! errors shown next to form fields, and the mapping from a domain error's `field` (a dotted path
//! such as `proxy.listen_path`) to the form field that shows it.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

use gatehouse_domain::ValidationError;

/// A parsed form body.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a urlencoded body (invalid UTF-8 is replaced, never refused).
    pub fn parse(body: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The first value of `name`, as sent (empty when absent).
    pub fn raw(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The first value of `name`, trimmed.
    pub fn text(&self, name: &str) -> String {
        self.raw(name).trim().to_owned()
    }

    /// Every non-empty value of `name` (checkbox groups, multi-selects), trimmed, without repeats.
    pub fn all(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &self.pairs {
            let v = v.trim();
            if k == name && !v.is_empty() && !out.iter().any(|o| o == v) {
                out.push(v.to_owned());
            }
        }
        out
    }

    /// Whether a checkbox was ticked (sent with any value but `off`/`false`/empty).
    pub fn checked(&self, name: &str) -> bool {
        self.pairs
            .iter()
            .any(|(k, v)| k == name && !matches!(v.trim(), "" | "off" | "false" | "0"))
    }

    /// Whether `name` was sent at all.
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// A number field: `default` when blank, an error next to the field when not a number.
    pub fn number<T: FromStr + Copy>(
        &self,
        name: &str,
        label: &str,
        default: T,
        errors: &mut FieldErrors,
    ) -> T {
        let t = self.text(name);
        if t.is_empty() {
            return default;
        }
        match t.parse::<T>() {
            Ok(v) => v,
            Err(_) => {
                errors.add(name, format!("{label} must be a number, e.g. 60"));
                default
            }
        }
    }

    /// The CSRF token sent with the form.
    pub fn csrf(&self) -> &str {
        self.raw("_csrf")
    }

    /// Every field except the CSRF token and the secret fields named in `secret`, as a map to
    /// re-fill a form (first value per name; checkbox groups as lists under `name[]`).
    pub fn values(&self, secret: &[&str]) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (k, v) in &self.pairs {
            if k == "_csrf" || secret.contains(&k.as_str()) {
                continue;
            }
            m.entry(k.clone())
                .or_insert_with(|| serde_json::Value::String(v.clone()));
            if let serde_json::Value::Array(a) = m
                .entry(format!("{k}[]"))
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            {
                a.push(serde_json::Value::String(v.clone()));
            }
        }
        m
    }
}

/// Splits a list typed in one box: commas, semicolons and new lines separate items.
pub fn split_list(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in s.split([',', '\n', '\r', ';']) {
        let item = item.trim();
        if !item.is_empty() && !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

/// Errors to show: one message per form field, plus general ones shown above the form.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FieldErrors {
    /// Form field name → message.
    pub fields: BTreeMap<String, String>,
    /// Messages not tied to one field.
    pub general: Vec<String>,
}

impl FieldErrors {
    /// An error next to `field` (the first one per field wins).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }

    /// An error above the form.
    pub fn general(&mut self, message: impl Into<String>) {
        self.general.push(message.into());
    }

    /// Whether there is any error.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// Places a domain error: next to its form field when `table` maps its `field`, else above
    /// the form.
    pub fn place(&mut self, field: &str, message: &str, table: &[(&str, &str)]) {
        match form_field_for(field, table) {
            Some(f) => self.add(f, message),
            None => self.general(message),
        }
    }

    /// [`FieldErrors::place`] for a [`ValidationError`].
    pub fn place_validation(&mut self, e: &ValidationError, table: &[(&str, &str)]) {
        self.place(&e.field, &e.message, table);
    }
}

/// The form field that shows an error about the domain `field`, using `table` (domain path →
/// form field). Array indices are ignored (`grant_types.2` is `grant_types`), and a path without
/// an entry falls back to its nearest parent that has one (`jwt_jwks_uris.0.url` →
/// `jwt_jwks_uris`). `None` when nothing matches (the error goes above the form).
pub fn form_field_for<'t>(field: &str, table: &[(&'t str, &'t str)]) -> Option<&'t str> {
    if field.is_empty() {
        return None;
    }
    let parts: Vec<&str> = field
        .split('.')
        .filter(|p| !p.is_empty() && !p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    for n in (1..=parts.len()).rev() {
        let candidate = parts[..n].join(".");
        if let Some((_, form)) = table.iter().find(|(domain, _)| *domain == candidate) {
            return Some(form);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_repeated_names_and_checkboxes() {
        let f = Form::parse(
            b"name=+Pay%20ments+&api=a&api=b&api=a&api=&strip=on&off=off&n=12&bad=x&_csrf=t",
        );
        assert_eq!(f.text("name"), "Pay ments");
        assert_eq!(f.raw("name"), " Pay ments ");
        assert_eq!(f.all("api"), vec!["a", "b"]);
        assert!(f.checked("strip"));
        assert!(!f.checked("off"));
        assert!(!f.checked("missing"));
        assert_eq!(f.csrf(), "t");
        let mut e = FieldErrors::default();
        assert_eq!(f.number::<i64>("n", "N", 0, &mut e), 12);
        assert_eq!(f.number::<i64>("missing", "M", -1, &mut e), -1);
        assert!(e.is_empty());
        assert_eq!(f.number::<f64>("bad", "Rate", 0.0, &mut e), 0.0);
        assert_eq!(e.fields["bad"], "Rate must be a number, e.g. 60");
        let v = f.values(&["strip"]);
        assert!(!v.contains_key("_csrf") && !v.contains_key("strip"));
        assert_eq!(v["api[]"], serde_json::json!(["a", "b", "a", ""]));
    }

    #[test]
    fn lists_split_on_commas_and_lines() {
        assert_eq!(
            split_list("a, b\nc;;a\r\n"),
            vec!["a".to_owned(), "b".into(), "c".into()]
        );
        assert!(split_list("  ").is_empty());
    }

    #[test]
    fn domain_fields_map_to_form_fields() {
        let table = [
            ("proxy.listen_path", "listen_path"),
            ("jwt_jwks_uris", "jwt_source"),
            ("dcr_options.grant_types", "dcr_grant_types"),
            (
                "config.dcr_options.registration_endpoint",
                "dcr_registration_endpoint",
            ),
        ];
        assert_eq!(
            form_field_for("proxy.listen_path", &table),
            Some("listen_path")
        );
        assert_eq!(
            form_field_for("jwt_jwks_uris.0.url", &table),
            Some("jwt_source")
        );
        assert_eq!(
            form_field_for("dcr_options.grant_types.3", &table),
            Some("dcr_grant_types")
        );
        assert_eq!(
            form_field_for("config.dcr_options.registration_endpoint", &table),
            Some("dcr_registration_endpoint")
        );
        assert_eq!(form_field_for("proxy.target_url", &table), None);
        assert_eq!(form_field_for("", &table), None);

        let mut e = FieldErrors::default();
        e.place("proxy.listen_path", "required", &table);
        e.place("global_rate_limit", "bad", &table);
        assert_eq!(e.fields["listen_path"], "required");
        assert_eq!(e.general, vec!["bad"]);
    }
}
