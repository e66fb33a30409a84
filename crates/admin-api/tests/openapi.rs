//! The committed OpenAPI document (`docs/openapi.json`) must match the one generated from the
//! code. Regenerate it with `cargo run -p gatehouse -- openapi > docs/openapi.json`.

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated: serde_json::Value =
        serde_json::to_value(gatehouse_admin_api::openapi()).expect("the document serialises");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json exists"))
            .expect("docs/openapi.json is JSON");
    assert!(
        generated == committed,
        "docs/openapi.json is out of date: run `cargo run -p gatehouse -- openapi > docs/openapi.json`"
    );
}

#[test]
fn every_route_is_documented_with_a_summary_and_responses() {
    let doc = gatehouse_admin_api::openapi();
    let routes = gatehouse_admin_api::route_list();
    for expected in [
        "GET /api/apis",
        "POST /api/apis",
        "GET /api/apis/{api_id}",
        "PUT /api/apis/{api_id}",
        "DELETE /api/apis/{api_id}",
        "GET /api/policies",
        "POST /api/policies",
        "GET /api/policies/{id}",
        "PUT /api/policies/{id}",
        "DELETE /api/policies/{id}",
        "POST /api/import/tyk",
        "DELETE /api/cache/jwks",
        "DELETE /api/cache/jwks/{api_id}",
        "GET /api/portal/configuration",
        "PUT /api/portal/configuration",
        "GET /api/portal/catalogue",
        "POST /api/portal/catalogue",
        "GET /api/portal/catalogue/{id}",
        "PUT /api/portal/catalogue/{id}",
        "DELETE /api/portal/catalogue/{id}",
        "POST /api/portal/dcr/discover",
        "POST /api/portal/dcr/test",
        "GET /api/portal/developers",
        "POST /api/portal/developers",
        "GET /api/portal/developers/{id}",
        "PUT /api/portal/developers/{id}",
        "DELETE /api/portal/developers/{id}",
        "GET /api/portal/clients",
        "DELETE /api/portal/clients/{client_id}",
    ] {
        assert!(
            routes.contains(&expected.to_owned()),
            "{expected} missing from {routes:?}"
        );
    }
    let v = serde_json::to_value(&doc).unwrap();
    for (path, item) in v["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
    }
}
