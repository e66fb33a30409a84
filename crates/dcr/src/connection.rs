//! The administrator's "test connection" button: register a throwaway client, read it, delete
//! it, and report what the IdP said at each step.

use gatehouse_domain::portal::Provider;
use serde::Serialize;

use crate::IdpDriver;
use crate::error::IdpError;
use crate::wire::{ClientHandle, ClientRequest};

/// Prefix of the throwaway client's name.
pub const TEST_CLIENT_PREFIX: &str = "gatehouse-connection-test-";

/// One step of a connection test. Never holds a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestStep {
    /// `register`, `read` or `delete`.
    pub step: String,
    /// Whether the step worked.
    pub ok: bool,
    /// The HTTP status the IdP answered, when known (`201` for a registration; the refusal's
    /// status for a refusal; none for transport failures).
    pub status: Option<u16>,
    /// The IdP's error code, if it gave one.
    pub error: Option<String>,
    /// What happened, in the IdP's words for a refusal.
    pub description: String,
}

/// The result of [`test_connection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    /// Whether every step worked.
    pub ok: bool,
    /// The driver tested.
    pub provider: Provider,
    /// The throwaway client's name.
    pub client_name: String,
    /// Its client id, when registration worked.
    pub client_id: Option<String>,
    /// Every step tried, in order.
    pub steps: Vec<TestStep>,
}

fn failed(step: &str, err: &IdpError) -> TestStep {
    let description = match err.root() {
        IdpError::Refused { description, .. } | IdpError::NameTaken { description, .. } => {
            description.clone()
        }
        other => other.public_message(),
    };
    TestStep {
        step: step.to_owned(),
        ok: false,
        status: err.idp_status(),
        error: err.idp_error_code().map(str::to_owned),
        description,
    }
}

fn passed(step: &str, status: Option<u16>, description: String) -> TestStep {
    TestStep {
        step: step.to_owned(),
        ok: true,
        status,
        error: None,
        description,
    }
}

/// Registers a throwaway client built from `request` (its name replaced by
/// `gatehouse-connection-test-<random>`), reads it back and deletes it. The delete is tried even
/// when the read fails; a client that could not be deleted is named in the report so it can be
/// removed by hand.
pub async fn test_connection(driver: &dyn IdpDriver, request: &ClientRequest) -> TestReport {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mut req = request.clone();
    req.client_name = format!("{TEST_CLIENT_PREFIX}{}", &suffix[..12]);
    let mut report = TestReport {
        ok: false,
        provider: driver.provider(),
        client_name: req.client_name.clone(),
        client_id: None,
        steps: Vec::new(),
    };

    let registered = match driver.register(&req).await {
        Ok(r) => r,
        Err(e) => {
            report.steps.push(failed("register", &e));
            return report;
        }
    };
    report.client_id = Some(registered.client_id.clone());
    report.steps.push(passed(
        "register",
        Some(201),
        format!(
            "registered client '{}'{}",
            registered.client_id,
            if registered.client_secret.is_some() {
                " with a secret"
            } else {
                ""
            }
        ),
    ));

    let mut handle: ClientHandle = registered.handle();
    match driver.read(&handle).await {
        Ok(r) => {
            handle = r.handle();
            report.steps.push(passed(
                "read",
                Some(200),
                format!("read client '{}' back", r.client_id),
            ));
        }
        Err(e) => {
            if let Some(latest) = e.latest_registration() {
                handle = latest.handle();
            }
            report.steps.push(failed("read", &e));
        }
    }

    match driver.delete(&handle).await {
        Ok(()) => report.steps.push(passed(
            "delete",
            None,
            format!("deleted client '{}'", handle.client_id),
        )),
        Err(e) => {
            let mut step = failed("delete", &e);
            step.description = format!(
                "{} (client '{}' is left at the IdP: remove it there)",
                step.description, handle.client_id
            );
            report.steps.push(step);
        }
    }
    report.ok = report.steps.iter().all(|s| s.ok);
    report
}
