//! The Activity page (`/activity`) and its CSV download (`/activity/export.csv`).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use gatehouse_admin_api::analytics::{self as an, AnalyticsQuery};
use gatehouse_domain::api::ApiDefinition;
use gatehouse_store::unix_now;

use super::{DashboardUi, failure};
use crate::activity::{Names, bad_param_context, dashboard_view, picker};
use crate::merge;
use crate::templates::render;

async fn names(ui: &DashboardUi) -> Names {
    let mut n = Names::default();
    if let Ok(apis) = ui.store().list_apis().await {
        for a in apis {
            let name = ApiDefinition::from_stored(&a.doc)
                .map(|d| d.name)
                .unwrap_or_default();
            n.apis
                .insert(a.id, if name.is_empty() { String::new() } else { name });
        }
        n.apis.retain(|_, v| !v.is_empty());
    }
    if let Ok(devs) = ui.store().list_developers().await {
        n.developers = devs.into_iter().map(|d| (d.id, d.email)).collect();
    }
    if let Ok(clients) = ui.store().list_clients(None, true).await {
        n.clients = clients
            .into_iter()
            .map(|c| {
                let name = c.doc["client_name"].as_str().unwrap_or_default().to_owned();
                (c.client_id, name)
            })
            .collect();
    }
    n
}

/// `GET /activity`.
pub(crate) async fn page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "activity", "Activity");
    let names = names(&ui).await;
    let mut options: Vec<(String, String)> = names
        .apis
        .iter()
        .map(|(id, name)| (id.clone(), format!("{name} ({id})")))
        .collect();
    options.sort_by(|x, y| x.1.cmp(&y.1));
    let option_values = |selected: Option<&str>| -> Value {
        options
            .iter()
            .map(|(id, label)| json!({"id": id, "label": label, "selected": selected == Some(id.as_str())}))
            .collect()
    };
    let q = match AnalyticsQuery::parse(|k| p.get(k).cloned(), unix_now()) {
        Ok(q) => q,
        Err(e) => {
            let fallback = AnalyticsQuery::parse(|_| None, unix_now()).expect("the defaults parse");
            let ctx = merge(
                base,
                merge(
                    bad_param_context(&e),
                    json!({"picker": picker(&fallback, "/activity", &[]),
                           "filter_options": option_values(None)}),
                ),
            );
            return render(StatusCode::BAD_REQUEST, "activity.html", &ctx);
        }
    };
    let (rows, truncated) = match q.rows(ui.store().as_ref()).await {
        Ok(r) => r,
        Err(e) => return failure(base, &format!("The analytics could not be read: {e}")),
    };
    let view = dashboard_view(&q, &rows, truncated, &names);
    let ctx = merge(
        base,
        json!({"picker": picker(&q, "/activity", &[("api_id", q.api_id.as_deref())]),
               "filter_options": option_values(q.api_id.as_deref()),
               "errors": {}, "view": view}),
    );
    render(StatusCode::OK, "activity.html", &ctx)
}

/// `GET /activity/export.csv`: the rows of the page's range and filter.
pub(crate) async fn export(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "activity", "Activity");
    let q = match AnalyticsQuery::parse(|k| p.get(k).cloned(), unix_now()) {
        Ok(q) => q,
        Err(e) => {
            return crate::message_page(
                StatusCode::BAD_REQUEST,
                base,
                "Bad range",
                &e.message,
                Some(("/activity", "Back to Activity")),
            );
        }
    };
    match q.rows(ui.store().as_ref()).await {
        Ok((rows, _)) => gatehouse_admin_api::handlers::csv_response(an::csv(&rows), q.from, q.to),
        Err(e) => failure(base, &format!("The analytics could not be read: {e}")),
    }
}
