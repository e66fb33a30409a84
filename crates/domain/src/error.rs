//! Validation errors that name the field they concern.

use std::fmt;

/// Bad input from an operator: what is wrong and which field (a dotted path such as
/// `proxy.listen_path`) it concerns. The admin API turns it into
/// `400 {"error": message, "field": field}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted path of the offending field; empty when the whole document is at fault.
    pub field: String,
    /// A sentence a person can act on.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Turns a `serde_path_to_error` failure into an error naming the field that failed to parse.
    pub fn from_serde(err: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let field = if path == "." { String::new() } else { path };
        let inner = err.inner().to_string();
        // serde_json appends " at line X column Y", which means nothing for a field error.
        let inner = match inner.find(" at line ") {
            Some(i) => inner[..i].to_owned(),
            None => inner,
        };
        let message = if field.is_empty() {
            inner
        } else {
            format!("{field}: {inner}")
        };
        Self { field, message }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValidationError {}
