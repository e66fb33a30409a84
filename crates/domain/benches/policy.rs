//! Policy resolution on the request path: claims → policy ids → effective policy → access check.
//!
//! `cargo bench -p gatehouse-domain --bench policy`

use std::collections::HashMap;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_domain::api::ApiDefinition;
use gatehouse_domain::claims::{self, Claims};
use gatehouse_domain::policy::{AccessDefinition, AccessSpec, Policy};
use gatehouse_domain::session::{
    ResolveInput, SessionState, apply_policies, authorize, resolve_policies,
};
use serde_json::json;

fn fixtures() -> (ApiDefinition, HashMap<String, Policy>, Claims) {
    let api: ApiDefinition = serde_json::from_value(json!({
        "api_id": "payments", "enable_jwt": true, "jwt_signing_method": "rsa",
        "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
        "jwt_default_policies": ["basic"],
        "scopes": {"jwt": {"scope_claim_name": "scp", "scope_to_policy": {"payments:write": "writer"}}}
    }))
    .unwrap();
    let mut policies = HashMap::new();
    for (id, rate) in [("gold", 100.0), ("basic", 10.0), ("writer", 50.0)] {
        let mut p = Policy {
            id: id.to_owned(),
            rate,
            per: 60.0,
            quota_max: 10_000,
            quota_renewal_rate: 3600,
            ..Default::default()
        };
        p.access_rights.insert(
            "payments".to_owned(),
            AccessDefinition {
                api_id: "payments".to_owned(),
                allowed_urls: vec![AccessSpec {
                    url: "^/items/{id}".to_owned(),
                    methods: vec!["GET".to_owned()],
                }],
                ..Default::default()
            },
        );
        policies.insert(id.to_owned(), p);
    }
    let claims: Claims = serde_json::from_value(json!({
        "sub": "0oa1b2c3d4", "cid": "0oa1b2c3d4", "pol": "gold",
        "scp": ["payments:read", "payments:write"], "exp": 4_000_000_000i64
    }))
    .unwrap();
    (api, policies, claims)
}

fn bench(c: &mut Criterion) {
    let (api, policies, claims) = fixtures();
    let exists = |id: &str| policies.contains_key(id);

    c.bench_function("identity_and_client_id", |b| {
        b.iter(|| {
            let id = claims::identity(&claims, &api.jwt_identity_base_field).unwrap();
            let cid = claims::client_id_for(&claims, false);
            (id, cid)
        })
    });
    c.bench_function("resolve_policies (claim + scope mapping)", |b| {
        b.iter(|| {
            resolve_policies(ResolveInput {
                claims: &claims,
                api: &api,
                policy_exists: &exists,
                session_exists: true,
                client_policies: None,
            })
            .unwrap()
        })
    });
    let ids = resolve_policies(ResolveInput {
        claims: &claims,
        api: &api,
        policy_exists: &exists,
        session_exists: true,
        client_policies: None,
    })
    .unwrap();
    let pols: Vec<&Policy> = ids.iter().map(|i| &policies[i]).collect();
    c.bench_function(
        "apply_policies (2 policies, cached per snapshot in the gateway)",
        |b| b.iter(|| apply_policies(&pols).unwrap()),
    );
    let effective = apply_policies(&pols).unwrap();
    let session = SessionState::new("0oa1b2c3d4", &effective, Some(4_000_000_000), None, 1);
    c.bench_function("authorize (access rights + allowed_urls regex)", |b| {
        b.iter(|| {
            authorize(
                &effective,
                &session,
                2,
                "payments",
                None,
                "/items/42",
                "GET",
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
