//! Use cases of the control plane, shared by the admin REST API and the CLI (`gatehouse import`).
//!
//! This module knows nothing about HTTP: it validates documents with the domain crate, writes them
//! through the [`Store`] seam and tells the gateway that the configuration changed.

use std::sync::Arc;

use serde_json::Value;

use gatehouse_domain::ValidationError;
use gatehouse_domain::api::{ValidatedApi, validate_api};
use gatehouse_domain::import::{ImportItem, name_of, split_apis, split_policies};
use gatehouse_domain::policy::{ValidatedPolicy, validate_policy};
use gatehouse_domain::routing::route_key_with_domain;
use gatehouse_store::{Store, StoreError, StoredDoc, WriteMode, WriteOutcome};

/// Why a control-plane operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Bad input: 400 naming the field.
    #[error("{0}")]
    Invalid(ValidationError),
    /// A uniqueness rule: 409 naming the field.
    #[error("{message}")]
    Conflict {
        /// The field at fault.
        field: &'static str,
        /// What conflicts with what.
        message: String,
    },
    /// Unknown id: 404.
    #[error("{0}")]
    NotFound(String),
    /// The store failed: 503.
    #[error("the database is unavailable: {0}")]
    Store(String),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field, message } => Self::Conflict { field, message },
            StoreError::NotFound => Self::NotFound("not found".to_owned()),
            other => Self::Store(other.to_string()),
        }
    }
}

/// The result of a write: the stored document and the warnings about fields without effect.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// The id written.
    pub id: String,
    /// Created or updated.
    pub outcome: WriteOutcome,
    /// The stored document.
    pub doc: Value,
    /// Fields kept without effect.
    pub warnings: Vec<String>,
}

/// Called after every successful configuration write; the write's answer waits for the returned
/// future, so in a single process the change is live on the gateway when the request returns.
pub type ChangeHook =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// A hook that does nothing (another process, or the poller, picks the change up).
pub fn no_hook() -> ChangeHook {
    Arc::new(|| Box::pin(async {}))
}

/// The control plane's operations on APIs and policies.
#[derive(Clone)]
pub struct Control {
    store: Arc<dyn Store>,
    on_change: ChangeHook,
}

impl Control {
    /// Operations on `store`; `on_change` runs after each successful write.
    pub fn new(store: Arc<dyn Store>, on_change: ChangeHook) -> Self {
        Self { store, on_change }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// All API definitions.
    pub async fn list_apis(&self) -> Result<Vec<StoredDoc>, ControlError> {
        Ok(self.store.list_apis().await?)
    }

    /// One API definition.
    pub async fn get_api(&self, id: &str) -> Result<StoredDoc, ControlError> {
        self.store
            .get_api(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no API with api_id '{id}'")))
    }

    /// Validates and stores an API definition.
    pub async fn put_api(
        &self,
        body: Value,
        path_id: Option<&str>,
        mode: WriteMode,
    ) -> Result<WriteResult, ControlError> {
        let ValidatedApi { def, raw, warnings } =
            validate_api(body, path_id).map_err(ControlError::Invalid)?;
        let outcome = self
            .store
            .put_api(
                &def.api_id,
                &def.name,
                &route_key_with_domain(&def.domain, &def.proxy.listen_path),
                &raw,
                mode,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ControlError::NotFound(format!("no API with api_id '{}'", def.api_id))
                }
                other => other.into(),
            })?;
        (self.on_change)().await;
        Ok(WriteResult {
            id: def.api_id,
            outcome,
            doc: raw,
            warnings,
        })
    }

    /// Deletes an API definition.
    pub async fn delete_api(&self, id: &str) -> Result<(), ControlError> {
        if !self.store.delete_api(id).await? {
            return Err(ControlError::NotFound(format!("no API with api_id '{id}'")));
        }
        (self.on_change)().await;
        Ok(())
    }

    /// All policies.
    pub async fn list_policies(&self) -> Result<Vec<StoredDoc>, ControlError> {
        Ok(self.store.list_policies().await?)
    }

    /// One policy.
    pub async fn get_policy(&self, id: &str) -> Result<StoredDoc, ControlError> {
        self.store
            .get_policy(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no policy with id '{id}'")))
    }

    /// Validates and stores a policy. Access rights naming an API that does not exist are
    /// accepted with a warning (policies are often imported before their APIs).
    pub async fn put_policy(
        &self,
        body: Value,
        path_id: Option<&str>,
        mode: WriteMode,
    ) -> Result<WriteResult, ControlError> {
        let ValidatedPolicy {
            policy,
            raw,
            mut warnings,
        } = validate_policy(body, path_id).map_err(ControlError::Invalid)?;
        for api_id in policy.access_rights.keys() {
            if self.store.get_api(api_id).await?.is_none() {
                warnings.push(format!(
                    "access_rights.{api_id}: no API with this api_id exists (yet)"
                ));
            }
        }
        let outcome = self
            .store
            .put_policy(&policy.id, &policy.name, &raw, mode)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ControlError::NotFound(format!("no policy with id '{}'", policy.id))
                }
                other => other.into(),
            })?;
        (self.on_change)().await;
        Ok(WriteResult {
            id: policy.id,
            outcome,
            doc: raw,
            warnings,
        })
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, id: &str) -> Result<(), ControlError> {
        if !self.store.delete_policy(id).await? {
            return Err(ControlError::NotFound(format!("no policy with id '{id}'")));
        }
        (self.on_change)().await;
        Ok(())
    }

    /// Imports Tyk documents: API definitions first, then policies (so that policy warnings about
    /// missing APIs are accurate). Each item is created or replaced (an import is repeatable);
    /// one bad item does not stop the others.
    pub async fn import_tyk(&self, bundle: TykBundle) -> Vec<ImportItem> {
        let mut items = Vec::new();
        for (source, doc) in bundle.apis {
            for (i, api) in split_apis(doc).into_iter().enumerate() {
                let source = if i == 0 {
                    source.clone()
                } else {
                    format!("{source}[{i}]")
                };
                let name = name_of(&api);
                let r = self.put_api(api, None, WriteMode::Upsert).await;
                items.push(item("api", source, name, r));
            }
        }
        for (source, doc) in bundle.policies {
            match split_policies(doc) {
                Ok(list) => {
                    for (i, pol) in list.into_iter().enumerate() {
                        let src = format!("{source}[{i}]");
                        let name = name_of(&pol);
                        let r = self.put_policy(pol, None, WriteMode::Upsert).await;
                        items.push(item("policy", src, name, r));
                    }
                }
                Err(e) => items.push(ImportItem {
                    kind: "policy".to_owned(),
                    source,
                    id: None,
                    name: None,
                    status: "failed".to_owned(),
                    warnings: Vec::new(),
                    error: Some(e),
                }),
            }
        }
        items
    }
}

fn item(
    kind: &str,
    source: String,
    name: Option<String>,
    r: Result<WriteResult, ControlError>,
) -> ImportItem {
    match r {
        Ok(w) => ImportItem {
            kind: kind.to_owned(),
            source,
            id: Some(w.id),
            name,
            status: match w.outcome {
                WriteOutcome::Created => "imported",
                WriteOutcome::Updated => "updated",
            }
            .to_owned(),
            warnings: w.warnings,
            error: None,
        },
        Err(e) => ImportItem {
            kind: kind.to_owned(),
            source,
            id: None,
            name,
            status: "failed".to_owned(),
            warnings: Vec::new(),
            error: Some(match &e {
                ControlError::Invalid(v) if !v.field.is_empty() => {
                    format!("{} (field {})", v.message, v.field)
                }
                other => other.to_string(),
            }),
        },
    }
}

/// Tyk documents to import, each with where it came from.
#[derive(Debug, Default, Clone)]
pub struct TykBundle {
    /// `apps/*.json` documents.
    pub apis: Vec<(String, Value)>,
    /// `policies/*.json` or `policies.json` documents.
    pub policies: Vec<(String, Value)>,
}

impl TykBundle {
    /// Reads a Tyk gateway's configuration directory: `apps/*.json` and `policies/*.json` and/or
    /// `policies.json` (also `policies/policies.json`). Files that are not JSON are reported as
    /// failed items by the caller through [`TykBundle::read_dir`]'s second return value.
    pub fn read_dir(dir: &std::path::Path) -> Result<(Self, Vec<ImportItem>), String> {
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        let mut bundle = Self::default();
        let mut failures = Vec::new();
        let mut read_json =
            |kind: &str, path: &std::path::Path, into: &mut Vec<(String, Value)>| {
                let source = path.strip_prefix(dir).unwrap_or(path).display().to_string();
                match std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
                {
                    Ok(v) => into.push((source, v)),
                    Err(e) => failures.push(ImportItem {
                        kind: kind.to_owned(),
                        source,
                        id: None,
                        name: None,
                        status: "failed".to_owned(),
                        warnings: Vec::new(),
                        error: Some(format!("not readable as JSON: {e}")),
                    }),
                }
            };
        let apps = dir.join("apps");
        let pols = dir.join("policies");
        let mut found_any = false;
        for (kind, sub) in [("api", &apps), ("policy", &pols)] {
            if !sub.is_dir() {
                continue;
            }
            let mut files: Vec<_> = std::fs::read_dir(sub)
                .map_err(|e| format!("cannot read {}: {e}", sub.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                found_any = true;
                let target = if kind == "api" {
                    &mut bundle.apis
                } else {
                    &mut bundle.policies
                };
                read_json(kind, &f, target);
            }
        }
        let single = dir.join("policies.json");
        if single.is_file() {
            found_any = true;
            read_json("policy", &single, &mut bundle.policies);
        }
        if !found_any {
            return Err(format!(
                "{} has no apps/*.json, policies/*.json or policies.json: \
                 point it at a Tyk gateway's configuration directory",
                dir.display()
            ));
        }
        Ok((bundle, failures))
    }
}
