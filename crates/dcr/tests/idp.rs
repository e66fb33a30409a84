//! The drivers against the real test IdP (`testing/idp`, oidc-provider) in its three shapes, a
//! Gluu-style front in front of it, and a stub server for vendor error bodies and failures.
//! Needs `npm ci --prefix testing/idp`.

mod stub;

use std::time::Duration;

use gatehouse_dcr::{
    Action, ClientHandle, ClientRequest, DEFAULT_TIMEOUT, IdpDriver, IdpError, Registration,
    TEST_CLIENT_PREFIX, discover, driver_for, test_connection,
};
use gatehouse_domain::portal::{DcrOptions, Provider, Secret};
use gatehouse_test_support::idp::{IdpShape, SecretRotation, TestIdp, decode_jwt};
use serde_json::{Value, json};
use stub::{Request, Response, Stub};

fn options(idp: &TestIdp, provider: Provider) -> DcrOptions {
    DcrOptions {
        provider,
        registration_endpoint: idp.registration_endpoint().to_owned(),
        access_token: Secret::new(idp.initial_access_token()),
        scopes: if provider == Provider::Okta {
            String::new()
        } else {
            "read write".into()
        },
        ..Default::default()
    }
}

fn driver(opts: &DcrOptions) -> Box<dyn IdpDriver> {
    driver_for(opts, DEFAULT_TIMEOUT).expect("valid DCR options")
}

fn request(name: &str, opts: &DcrOptions) -> ClientRequest {
    ClientRequest::from_options(name, vec![], opts)
}

fn secret(reg: &Registration) -> String {
    reg.client_secret
        .as_ref()
        .expect("a client secret")
        .expose()
        .to_owned()
}

/// Asserts that nothing secret shows in the `Debug` form of `value`.
fn assert_no_secrets(value: &impl std::fmt::Debug, secrets: &[&str]) {
    let text = format!("{value:?}");
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!text.contains(s), "a secret shows in {text}");
    }
}

async fn token_status(idp: &TestIdp, id: &str, secret: &str) -> u16 {
    idp.client_credentials_raw(id, secret, None)
        .await
        .unwrap()
        .0
}

fn shape_provider(shape: IdpShape) -> Provider {
    match shape {
        IdpShape::Plain => Provider::Other,
        IdpShape::Okta => Provider::Okta,
        IdpShape::Keycloak => Provider::Keycloak,
    }
}

/// Register (with and without `pol`), token, read, rotate (old secret refused, new one works),
/// delete (token refused, read fails) for one shape.
async fn full_lifecycle(shape: IdpShape) {
    let idp = TestIdp::start(shape).await.unwrap();
    if shape == IdpShape::Plain {
        // oidc-provider keeps secrets on update; model an RFC 7592 server that rotates them.
        idp.set_secret_rotation(SecretRotation::OnUpdate)
            .await
            .unwrap();
    }
    let provider = shape_provider(shape);
    let opts = options(&idp, provider);
    let d = driver(&opts);
    assert_eq!(d.provider(), provider);

    // Without pol: no claim.
    let plain = d
        .register(&request(&format!("{shape}-nopol"), &opts))
        .await
        .unwrap();
    let token = idp
        .client_credentials_token(&plain.client_id, &secret(&plain), None)
        .await
        .unwrap();
    assert!(decode_jwt(&token).unwrap().1.get("pol").is_none());

    // With pol: the policy id reaches the token.
    let reg = d
        .register(&request(&format!("{shape}-gold"), &opts).with_extra("pol", json!("gold")))
        .await
        .unwrap();
    let id = reg.client_id.clone();
    let s1 = secret(&reg);
    assert_eq!(reg.metadata["pol"], json!("gold"));
    assert!(reg.metadata.get("client_secret").is_none());
    assert!(reg.metadata.get("registration_access_token").is_none());
    match provider {
        Provider::Okta => {
            assert!(reg.registration_access_token.is_none());
            assert!(reg.registration_client_uri.is_none());
            assert_eq!(reg.metadata["application_type"], json!("service"));
        }
        _ => {
            assert!(reg.registration_access_token.is_some());
            assert!(reg.registration_client_uri.is_some());
        }
    }
    let token = idp.client_credentials_token(&id, &s1, None).await.unwrap();
    let claims = decode_jwt(&token).unwrap().1;
    assert_eq!(claims["pol"], json!("gold"));
    let mut secrets = vec![s1.as_str(), idp.initial_access_token()];
    secrets.extend(reg.registration_access_token.as_ref().map(Secret::expose));
    assert_no_secrets(&reg, &secrets);
    assert_no_secrets(&reg.handle(), &secrets);
    assert_no_secrets(&opts, &[idp.initial_access_token()]);

    // Read.
    let read = d.read(&reg.handle()).await.unwrap();
    assert_eq!(read.client_id, id);
    assert_eq!(read.metadata["client_name"], json!(format!("{shape}-gold")));

    // Rotate: old refused, new works.
    let rotated = d.rotate_secret(&read.handle()).await.unwrap();
    let s2 = secret(&rotated);
    assert_ne!(s1, s2);
    assert_eq!(
        token_status(&idp, &id, &s1).await,
        401,
        "old secret refused"
    );
    let token = idp.client_credentials_token(&id, &s2, None).await.unwrap();
    assert_eq!(
        decode_jwt(&token).unwrap().1["pol"],
        json!("gold"),
        "metadata kept"
    );
    assert_no_secrets(&rotated, &[&s1, &s2]);

    // Delete: the IdP no longer knows it.
    let handle = rotated.handle();
    d.delete(&handle).await.unwrap();
    assert_eq!(
        token_status(&idp, &id, &s2).await,
        401,
        "deleted client refused"
    );
    let err = d.read(&handle).await.unwrap_err();
    assert!(err.is_refusal(), "{err:?}");
    assert_eq!(err.idp_status(), Some(401));
    if provider == Provider::Okta {
        assert!(err.client_gone(), "{err:?}");
    }
    d.delete(&plain.handle()).await.unwrap();
}

#[tokio::test]
async fn plain_shape_with_the_other_driver() {
    full_lifecycle(IdpShape::Plain).await;
}

#[tokio::test]
async fn okta_shape_with_the_okta_driver() {
    full_lifecycle(IdpShape::Okta).await;
}

#[tokio::test]
async fn keycloak_shape_with_the_keycloak_driver() {
    full_lifecycle(IdpShape::Keycloak).await;
}

#[tokio::test]
async fn an_idp_that_keeps_the_secret_is_reported_and_the_new_rat_kept() {
    // The plain shape by default is oidc-provider: PUT keeps the secret, rotates the RAT.
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let opts = options(&idp, Provider::Other);
    let d = driver(&opts);
    let reg = d.register(&request("keeps", &opts)).await.unwrap();
    let s1 = secret(&reg);
    let err = d.rotate_secret(&reg.handle()).await.unwrap_err();
    assert!(matches!(err.root(), IdpError::NotSupported(_)), "{err:?}");
    assert_eq!(err.http_status(), 422);
    assert!(
        err.public_message()
            .contains("does not rotate client secrets through RFC 7592"),
        "{}",
        err.public_message()
    );
    let latest = err
        .latest_registration()
        .expect("the rotated RAT is returned");
    assert_ne!(
        latest.registration_access_token, reg.registration_access_token,
        "the PUT rotated the RAT"
    );
    // The old RAT is dead, the returned one works, and the secret still works.
    assert_eq!(
        d.read(&reg.handle()).await.unwrap_err().idp_status(),
        Some(401)
    );
    let again = d.read(&latest.handle()).await.unwrap();
    assert_eq!(token_status(&idp, &reg.client_id, &s1).await, 200);
    assert_no_secrets(&err, &[&s1, idp.initial_access_token()]);
    d.delete(&again.handle()).await.unwrap();

    // Curity-like: a read rotates the secret too, and the driver hands it over.
    idp.set_secret_rotation(SecretRotation::OnReadAndUpdate)
        .await
        .unwrap();
    let reg = d.register(&request("curity-like", &opts)).await.unwrap();
    let s1 = secret(&reg);
    let read = d.read(&reg.handle()).await.unwrap();
    let s2 = secret(&read);
    assert_ne!(s1, s2);
    assert_eq!(token_status(&idp, &reg.client_id, &s2).await, 200);
    let rotated = d.rotate_secret(&read.handle()).await.unwrap();
    let s3 = secret(&rotated);
    assert!(s3 != s2 && s3 != s1);
    assert_eq!(token_status(&idp, &reg.client_id, &s2).await, 401);
    assert_eq!(token_status(&idp, &reg.client_id, &s3).await, 200);
}

#[tokio::test]
async fn keycloak_rat_rotates_on_every_use() {
    let idp = TestIdp::start(IdpShape::Keycloak).await.unwrap();
    let opts = options(&idp, Provider::Keycloak);
    let d = driver(&opts);
    let reg = d.register(&request("kc-rat", &opts)).await.unwrap();
    let uri = reg.registration_client_uri.clone().unwrap();
    assert_eq!(
        uri,
        format!("{}/{}", idp.registration_endpoint(), reg.client_id)
    );
    let r1 = d.read(&reg.handle()).await.unwrap();
    assert_ne!(r1.registration_access_token, reg.registration_access_token);
    let r2 = d.read(&r1.handle()).await.unwrap();
    assert_ne!(r2.registration_access_token, r1.registration_access_token);
    // A used RAT is dead.
    let err = d.read(&r1.handle()).await.unwrap_err();
    assert_eq!(err.idp_status(), Some(401));
    assert!(!err.client_gone(), "a dead RAT is not a gone client");
    // Without a stored client URI the Keycloak form is derived.
    let derived = ClientHandle {
        registration_client_uri: None,
        ..r2.handle()
    };
    let r3 = d.read(&derived).await.unwrap();
    assert_eq!(r3.registration_client_uri.as_deref(), Some(uri.as_str()));
    // Without a RAT nothing can be managed.
    let err = d
        .delete(&ClientHandle::new(&reg.client_id))
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::NotSupported(_)), "{err:?}");
    d.delete(&r3.handle()).await.unwrap();
}

#[tokio::test]
async fn refusals_carry_the_idps_words() {
    for shape in [IdpShape::Plain, IdpShape::Okta, IdpShape::Keycloak] {
        let idp = TestIdp::start(shape).await.unwrap();
        let provider = shape_provider(shape);
        let good = options(&idp, provider);
        let wrong = DcrOptions {
            access_token: Secret::new("not-the-initial-access-token"),
            ..good.clone()
        };
        let err = driver(&wrong)
            .register(&request("wrong-token", &wrong))
            .await
            .unwrap_err();
        match &err {
            IdpError::Refused {
                provider: p,
                action: Action::Register,
                status: 401,
                description,
                ..
            } => {
                assert_eq!(*p, provider);
                assert!(!description.is_empty());
                if provider == Provider::Okta {
                    assert_eq!(description, "Invalid token provided");
                    assert_eq!(err.idp_error_code(), Some("E0000011"));
                } else {
                    assert_eq!(err.idp_error_code(), Some("invalid_token"));
                }
            }
            other => panic!("{shape}: {other:?}"),
        }
        assert_eq!(err.http_status(), 502, "Gatehouse's own token was refused");
        assert_no_secrets(
            &err,
            &["not-the-initial-access-token", idp.initial_access_token()],
        );
        assert!(
            !err.public_message()
                .contains("not-the-initial-access-token")
        );

        // Bad metadata: an unknown scope.
        let mut req = request("bad-scope", &good);
        req.scope = Some("no-such-scope".into());
        req.extra.insert("pol".into(), json!(42));
        let err = driver(&good).register(&req).await.unwrap_err();
        match &err {
            IdpError::Refused {
                status: 400,
                description,
                ..
            } => {
                assert!(!description.is_empty(), "{shape}");
            }
            other => panic!("{shape}: {other:?}"),
        }
        assert_eq!(err.idp_error_code(), Some("invalid_client_metadata"));
        assert_eq!(err.http_status(), 400);
        assert!(
            err.public_message().contains("refused the registration"),
            "{}",
            err.public_message()
        );
    }
}

#[tokio::test]
async fn okta_duplicate_names_are_clear() {
    let idp = TestIdp::start(IdpShape::Okta).await.unwrap();
    let opts = options(&idp, Provider::Okta);
    let d = driver(&opts);
    let first = d.register(&request("payments-app", &opts)).await.unwrap();
    let err = d
        .register(&request("payments-app", &opts))
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::NameTaken { .. }), "{err:?}");
    assert_eq!(
        err.public_message(),
        "An OAuth client named 'payments-app' already exists at Okta; choose another name"
    );
    assert_eq!(err.http_status(), 409);
    // Okta's own 404 shape on rotation of an unknown id.
    let err = d
        .rotate_secret(&ClientHandle::new("0oaNOSUCHCLIENT"))
        .await
        .unwrap_err();
    assert_eq!(err.idp_status(), Some(404));
    assert_eq!(err.idp_error_code(), Some("E0000007"));
    assert!(err.client_gone());
    d.delete(&first.handle()).await.unwrap();
}

#[tokio::test]
async fn a_stopped_idp_is_unreachable() {
    let mut idp = TestIdp::start(IdpShape::Keycloak).await.unwrap();
    let opts = options(&idp, Provider::Keycloak);
    let d = driver(&opts);
    let reg = d.register(&request("soon-gone", &opts)).await.unwrap();
    idp.stop().await.unwrap();
    for err in [
        d.register(&request("nobody-home", &opts))
            .await
            .unwrap_err(),
        d.read(&reg.handle()).await.unwrap_err(),
        d.rotate_secret(&reg.handle()).await.unwrap_err(),
        d.delete(&reg.handle()).await.unwrap_err(),
    ] {
        assert!(matches!(err, IdpError::Unreachable(_)), "{err:?}");
        assert_eq!(err.http_status(), 502);
        assert!(
            err.public_message()
                .starts_with("The identity provider could not be reached")
        );
        assert_no_secrets(&err, &[idp.initial_access_token()]);
    }
    let err = discover(idp.issuer(), Duration::from_secs(2), false)
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn discovery_for_every_shape() {
    for shape in [IdpShape::Plain, IdpShape::Okta, IdpShape::Keycloak] {
        let idp = TestIdp::start(shape).await.unwrap();
        let d = discover(idp.issuer(), DEFAULT_TIMEOUT, false)
            .await
            .unwrap();
        assert_eq!(d.issuer, idp.issuer());
        assert_eq!(
            d.registration_endpoint.as_deref(),
            Some(idp.registration_endpoint())
        );
        assert_eq!(d.token_endpoint.as_deref(), Some(idp.token_endpoint()));
        assert_eq!(d.jwks_uri.as_deref(), Some(idp.jwks_uri()));
        assert!(
            d.grant_types_supported
                .iter()
                .any(|g| g == "client_credentials"),
            "{shape}"
        );
        assert!(!d.token_endpoint_auth_methods_supported.is_empty());
        assert!(d.scopes_supported.iter().any(|s| s == "read"));
        assert_eq!(d.document_url, idp.discovery_url());
        // A trailing slash on the issuer does not matter.
        let slash = discover(&format!("{}/", idp.issuer()), DEFAULT_TIMEOUT, false)
            .await
            .unwrap();
        assert_eq!(slash.issuer, idp.issuer());

        // Discovery fills a half-configured provider, which then works.
        let mut opts = DcrOptions {
            provider: shape_provider(shape),
            access_token: Secret::new(idp.initial_access_token()),
            ..Default::default()
        };
        d.fill_dcr_options(&mut opts);
        assert_eq!(opts.token_endpoint, idp.token_endpoint());
        let reg = driver(&opts)
            .register(&request("via-discovery", &opts))
            .await
            .unwrap();
        driver(&opts).delete(&reg.handle()).await.unwrap();
    }
    // An issuer with no discovery document: the IdP's 404.
    let idp = TestIdp::start(IdpShape::Keycloak).await.unwrap();
    let err = discover(
        &format!("{}/realms/nope", idp.base_url()),
        DEFAULT_TIMEOUT,
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.idp_status(), Some(404), "{err:?}");
}

#[tokio::test]
async fn discovery_checks_the_issuer_and_falls_back_to_rfc8414() {
    // A document naming another issuer.
    let stub = Stub::start(|base| {
        move |_req: Request| {
            let base = base.clone();
            async move {
                Response::json(
                    200,
                    json!({"issuer": format!("{base}/elsewhere"), "token_endpoint": "x"}),
                )
            }
        }
    })
    .await;
    let err = discover(&stub.base, DEFAULT_TIMEOUT, false)
        .await
        .unwrap_err();
    match err {
        IdpError::InvalidResponse(m) => assert!(m.contains("names the issuer"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Only RFC 8414 metadata, at the path-inserted location.
    let stub = Stub::start(|base| {
        move |req: Request| {
            let base = base.clone();
            async move {
                if req.target == "/.well-known/oauth-authorization-server/tenant" {
                    Response::json(
                        200,
                        json!({"issuer": format!("{base}/tenant"),
                        "registration_endpoint": format!("{base}/tenant/register")}),
                    )
                } else {
                    Response::text(
                        404,
                        "text/html",
                        "<html><body><h1>Not Found</h1></body></html>",
                    )
                }
            }
        }
    })
    .await;
    let d = discover(&format!("{}/tenant", stub.base), DEFAULT_TIMEOUT, false)
        .await
        .unwrap();
    assert_eq!(
        d.registration_endpoint,
        Some(format!("{}/tenant/register", stub.base))
    );
    assert_eq!(d.token_endpoint, None);
    let err = discover("ftp://example", DEFAULT_TIMEOUT, false)
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::NotSupported(_)));
}

#[tokio::test]
async fn connection_test_for_every_shape() {
    for shape in [IdpShape::Plain, IdpShape::Okta, IdpShape::Keycloak] {
        let idp = TestIdp::start(shape).await.unwrap();
        let opts = options(&idp, shape_provider(shape));
        let d = driver(&opts);
        let report = test_connection(d.as_ref(), &request("ignored", &opts)).await;
        assert!(report.ok, "{shape}: {report:?}");
        assert!(report.client_name.starts_with(TEST_CLIENT_PREFIX));
        let steps: Vec<&str> = report.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["register", "read", "delete"]);
        assert_eq!(report.steps[0].status, Some(201));
        let id = report.client_id.clone().unwrap();
        assert!(report.steps[2].description.contains(&id));
        // It is gone again.
        let (status, _) = idp
            .client_credentials_raw(&id, "whatever", None)
            .await
            .unwrap();
        assert_eq!(status, 401);
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains(idp.initial_access_token()));

        // A wrong token: one failed step, in the IdP's words.
        let wrong = DcrOptions {
            access_token: Secret::new("wrong-token-value"),
            ..opts.clone()
        };
        let report = test_connection(driver(&wrong).as_ref(), &request("x", &wrong)).await;
        assert!(!report.ok);
        assert_eq!(report.steps.len(), 1);
        let step = &report.steps[0];
        assert_eq!(
            (step.step.as_str(), step.ok, step.status),
            ("register", false, Some(401))
        );
        assert!(!step.description.is_empty());
        assert!(
            !serde_json::to_string(&report)
                .unwrap()
                .contains("wrong-token-value")
        );
    }
}

#[tokio::test]
async fn vendor_errors_and_broken_answers() {
    let kc_opts = |url: &str| DcrOptions {
        provider: Provider::Keycloak,
        registration_endpoint: format!("{url}/realms/r/clients-registrations/openid-connect"),
        access_token: Secret::new("kc-iat-secret"),
        ..Default::default()
    };

    // Keycloak's client registration policy refusal.
    let stub = Stub::fixed(Response::json(403, json!({"error": "insufficient_scope",
        "error_description": "Policy 'Trusted Hosts' rejected request to client-registration service. Details: Host not trusted."}))).await;
    let opts = kc_opts(&stub.base);
    let err = driver(&opts)
        .register(&request("kc", &opts))
        .await
        .unwrap_err();
    assert_eq!(
        err.public_message(),
        "Keycloak refused the registration: Policy 'Trusted Hosts' rejected request to \
         client-registration service. Details: Host not trusted."
    );
    assert_eq!(err.idp_error_code(), Some("insufficient_scope"));
    let seen = stub.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer kc-iat-secret")
    );
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["client_name"], json!("kc"));
    assert_eq!(body["grant_types"], json!(["client_credentials"]));

    // An HTML error page: quoted briefly, tags stripped.
    let page = format!(
        "<html><head><title>Bad Request</title></head><body><h1>Request rejected</h1><p>{}</p></body></html>",
        "blah ".repeat(80)
    );
    let stub = Stub::fixed(Response::text(400, "text/html", &page)).await;
    let opts = kc_opts(&stub.base);
    let err = driver(&opts)
        .register(&request("kc", &opts))
        .await
        .unwrap_err();
    match &err {
        IdpError::Refused {
            status: 400,
            error: None,
            description,
            ..
        } => {
            assert!(
                description.starts_with("Bad Request Request rejected blah"),
                "{description}"
            );
            assert!(!description.contains('<'));
            assert!(description.chars().count() <= 201);
        }
        other => panic!("{other:?}"),
    }

    // 5xx: unreachable. 200 instead of 201, and 201 without client_id: invalid.
    for (resp, unreachable) in [
        (Response::text(503, "text/plain", "maintenance"), true),
        (
            Response::json(200, json!({"client_id": "x", "client_secret": "s"})),
            false,
        ),
        (Response::json(201, json!({"client_secret": "s"})), false),
        (Response::text(201, "text/plain", "created!"), false),
    ] {
        let stub = Stub::fixed(resp).await;
        let opts = kc_opts(&stub.base);
        let err = driver(&opts)
            .register(&request("kc", &opts))
            .await
            .unwrap_err();
        if unreachable {
            assert!(matches!(err, IdpError::Unreachable(_)), "{err:?}");
        } else {
            assert!(matches!(err, IdpError::InvalidResponse(_)), "{err:?}");
        }
        assert_eq!(err.http_status(), 502);
    }

    // Silence: the timeout fires.
    let stub = Stub::fixed(Response {
        delay: Some(Duration::from_secs(30)),
        ..Response::json(201, json!({"client_id": "late"}))
    })
    .await;
    let opts = kc_opts(&stub.base);
    let d = driver_for(&opts, Duration::from_millis(300)).unwrap();
    let err = d.register(&request("kc", &opts)).await.unwrap_err();
    match err {
        IdpError::Unreachable(m) => assert!(m.contains("no answer within"), "{m}"),
        other => panic!("{other:?}"),
    }

    // TLS is on by default: an https URL to a plain-HTTP port fails to connect, with or
    // without verification.
    let stub = Stub::fixed(Response::json(201, json!({"client_id": "x"}))).await;
    for skip in [false, true] {
        let opts = DcrOptions {
            registration_endpoint: format!("{}/reg", stub.base.replace("http://", "https://")),
            ssl_insecure_skip_verify: skip,
            ..kc_opts(&stub.base)
        };
        let err = driver(&opts)
            .register(&request("kc", &opts))
            .await
            .unwrap_err();
        assert!(matches!(err, IdpError::Unreachable(_)), "{err:?}");
    }
}

#[tokio::test]
async fn okta_wire_shape() {
    let stub = Stub::start(|_base| {
        |req: Request| async move {
            let client = json!({"client_id": "0oa1", "client_secret": "sec",
                "client_secret_expires_at": 0, "application_type": "service"});
            match (req.method.as_str(), req.target.ends_with("/newSecret")) {
                ("POST", false) => Response::json(201, client),
                ("DELETE", _) => Response::text(204, "text/plain", ""),
                _ => Response::json(200, client),
            }
        }
    })
    .await;
    let opts = DcrOptions {
        provider: Provider::Okta,
        idp_host: format!("{}/", stub.base),
        access_token: Secret::new("00-okta-api-token"),
        scopes: "ignored".into(),
        ..Default::default()
    };
    let d = driver(&opts);
    let reg = d
        .register(&request("svc", &opts).with_extra("pol", json!("gold")))
        .await
        .unwrap();
    assert_eq!(reg.client_secret_expires_at, None);
    d.rotate_secret(&reg.handle()).await.unwrap();
    d.read(&reg.handle()).await.unwrap();
    d.delete(&reg.handle()).await.unwrap();
    let seen = stub.seen();
    let calls: Vec<(String, String)> = seen
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_owned(), "/oauth2/v1/clients".to_owned()),
            (
                "POST".to_owned(),
                "/oauth2/v1/clients/0oa1/lifecycle/newSecret".to_owned()
            ),
            ("GET".to_owned(), "/oauth2/v1/clients/0oa1".to_owned()),
            ("DELETE".to_owned(), "/oauth2/v1/clients/0oa1".to_owned()),
        ]
    );
    for r in &seen {
        assert_eq!(r.header("authorization"), Some("SSWS 00-okta-api-token"));
    }
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"client_name": "svc", "application_type": "service", "grant_types": ["client_credentials"],
               "response_types": ["token"], "token_endpoint_auth_method": "client_secret_basic",
               "pol": "gold"})
    );
}

/// A Gluu/Janssen-style front for the plain test IdP: registration at
/// `/jans-auth/restv1/register` without any token (open registration: the front adds the
/// fixture's IAT), client URIs `…/register?client_id=<id>`, and a one-day secret lifetime
/// reported in `client_secret_expires_at` (Janssen's default client expiry).
async fn gluu_front(idp: &TestIdp) -> Stub {
    let idp_base = idp.base_url();
    let iat = idp.initial_access_token().to_owned();
    Stub::start(move |base| {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        move |req: Request| {
            let (http, base, idp_base, iat) =
                (http.clone(), base.clone(), idp_base.clone(), iat.clone());
            async move {
                let url = url::Url::parse(&format!("http://x{}", req.target)).unwrap();
                if url.path() != "/jans-auth/restv1/register" {
                    return Response::json(404, json!({"error": "not_found"}));
                }
                let client_id = url
                    .query_pairs()
                    .find(|(k, _)| k == "client_id")
                    .map(|(_, v)| v.into_owned());
                let target = match &client_id {
                    Some(id) => format!("{idp_base}/reg/{id}"),
                    None => format!("{idp_base}/reg"),
                };
                let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
                let auth = match req.header("authorization") {
                    Some(a) => a.to_owned(),
                    None if client_id.is_none() => format!("Bearer {iat}"),
                    None => String::new(),
                };
                let mut fwd = http
                    .request(method, target)
                    .header("accept", "application/json");
                if !auth.is_empty() {
                    fwd = fwd.header("authorization", auth);
                }
                if !req.body.is_empty() {
                    fwd = fwd
                        .header("content-type", "application/json")
                        .body(req.body.clone());
                }
                let resp = fwd.send().await.unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                let mut json: Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => return Response::text(status, "text/plain", &text),
                };
                if let Some(id) = json
                    .get("client_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                {
                    json["registration_client_uri"] =
                        json!(format!("{base}/jans-auth/restv1/register?client_id={id}"));
                    let issued = json["client_id_issued_at"].as_i64().unwrap_or(0);
                    json["client_secret_expires_at"] = json!(issued + 86_400);
                }
                Response::json(status, json)
            }
        }
    })
    .await
}

#[tokio::test]
async fn gluu_style_query_uris_open_registration_and_expiry() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let front = gluu_front(&idp).await;
    let opts = DcrOptions {
        provider: Provider::Gluu,
        registration_endpoint: format!("{}/jans-auth/restv1/register", front.base),
        token_endpoint_auth_method: "client_secret_post".into(),
        scopes: "read".into(),
        ..Default::default()
    };
    let d = driver(&opts);
    let reg = d
        .register(&request("gluu-app", &opts).with_extra("pol", json!("silver")))
        .await
        .unwrap();
    let uri = reg.registration_client_uri.clone().unwrap();
    assert_eq!(
        uri,
        format!(
            "{}/jans-auth/restv1/register?client_id={}",
            front.base, reg.client_id
        )
    );
    let issued = reg.metadata["client_id_issued_at"].as_i64().unwrap();
    assert_eq!(reg.client_secret_expires_at, Some(issued + 86_400));
    assert!(!reg.secret_expired(issued));
    assert!(reg.secret_expired(issued + 86_400));
    let first = &front.seen()[0];
    assert_eq!(
        first.header("authorization"),
        None,
        "no token configured, no header"
    );
    let sent: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(sent["access_token_as_jwt"], json!(true));
    assert_eq!(
        sent["token_endpoint_auth_method"],
        json!("client_secret_post")
    );

    let token = idp
        .client_credentials_token(&reg.client_id, &secret(&reg), None)
        .await
        .unwrap();
    assert_eq!(decode_jwt(&token).unwrap().1["pol"], json!("silver"));

    // Management on the query-parameter URI, as given.
    let read = d.read(&reg.handle()).await.unwrap();
    assert_eq!(read.registration_client_uri.as_deref(), Some(uri.as_str()));
    let err = d.rotate_secret(&read.handle()).await.unwrap_err();
    assert!(matches!(err.root(), IdpError::NotSupported(_)), "{err:?}");
    assert!(
        err.public_message()
            .starts_with("Gluu does not rotate client secrets"),
        "{}",
        err.public_message()
    );
    let latest = err.latest_registration().unwrap().handle();
    d.delete(&latest).await.unwrap();
    assert!(
        front
            .seen()
            .iter()
            .skip(1)
            .all(|r| r.target.ends_with(&format!("?client_id={}", reg.client_id)))
    );
    assert_eq!(token_status(&idp, &reg.client_id, &secret(&reg)).await, 401);
}

/// The ids of the clients the IdP knows.
async fn idp_clients(idp: &TestIdp) -> Vec<String> {
    idp.client_ids().await.unwrap()
}

/// Client ids real IdPs issue are kept and managed (percent-encoded in URLs); ids Gatehouse
/// cannot store or put in a URL fail the registration, and the client is deleted there again.
#[tokio::test]
async fn idp_supplied_client_ids_are_checked() {
    // Keycloak shape: management on the registration_client_uri the IdP gave.
    let idp = TestIdp::start(IdpShape::Keycloak).await.unwrap();
    let opts = options(&idp, Provider::Keycloak);
    let d = driver(&opts);
    let inum = "@!F2B4.C6A1.1B3A.96C8!0001!9A5E.C1D6!0008!FB1D.6E0C.5D9A.8C2F";
    let long = "k".repeat(300);
    idp.queue_client_ids(&[inum, &long, "a/b?c=d", "evil<script>"])
        .await
        .unwrap();

    let reg = d.register(&request("gluu-like", &opts)).await.unwrap();
    assert_eq!(reg.client_id, inum);
    let read = d.read(&reg.handle()).await.unwrap();
    assert_eq!(read.client_id, inum);
    d.delete(&read.handle()).await.unwrap();

    for (name, says) in [
        ("too-long", "300 bytes long (at most 255)"),
        ("slash", "contains '/'"),
        ("markup", "contains '<'"),
    ] {
        let err = d.register(&request(name, &opts)).await.unwrap_err();
        assert!(matches!(err, IdpError::InvalidResponse(_)), "{err:?}");
        assert_eq!(err.http_status(), 502);
        let msg = err.public_message();
        assert!(msg.contains(says), "{msg}");
        assert!(
            msg.contains("the client was deleted at the identity provider again"),
            "{msg}"
        );
        assert!(
            !msg.contains(&long),
            "a long id is not repeated whole: {msg}"
        );
        assert_no_secrets(&err, &[idp.initial_access_token()]);
    }
    assert_eq!(idp_clients(&idp).await, Vec::<String>::new(), "no orphans");

    // Okta shape: the id goes into Okta's client API paths.
    let idp = TestIdp::start(IdpShape::Okta).await.unwrap();
    let opts = options(&idp, Provider::Okta);
    let d = driver(&opts);
    idp.queue_client_ids(&["0oa with space", "0oa!ok.id-1"])
        .await
        .unwrap();
    let err = d.register(&request("spaced", &opts)).await.unwrap_err();
    let msg = err.public_message();
    assert!(
        msg.contains("contains ' '") && msg.contains("deleted at Okta again"),
        "{msg}"
    );
    let reg = d.register(&request("bang", &opts)).await.unwrap();
    assert_eq!(reg.client_id, "0oa!ok.id-1");
    assert_eq!(
        idp_clients(&idp).await,
        vec!["0oa!ok.id-1".to_owned()],
        "the refused client is gone"
    );
    let rotated = d.rotate_secret(&reg.handle()).await.unwrap();
    assert_ne!(secret(&rotated), secret(&reg));
    d.delete(&reg.handle()).await.unwrap();
    assert!(idp_clients(&idp).await.is_empty());
}

/// A registration_client_uri on another origin: the registration access token is never sent
/// there, the registration fails and the client is deleted again (Keycloak: by the fallback URI;
/// `other` has none and says so); on a management answer the new token is kept with the old URI.
/// An origin listed in `registration_client_uri_origins` is accepted.
#[tokio::test]
async fn client_uris_on_another_origin_are_refused() {
    let idp = TestIdp::start(IdpShape::Keycloak).await.unwrap();
    let elsewhere = Stub::fixed(Response::json(200, json!({"client_id": "x"}))).await;
    let opts = options(&idp, Provider::Keycloak);
    let d = driver(&opts);

    idp.set_registration_client_uri_origin(Some(&elsewhere.base))
        .await
        .unwrap();
    let err = d.register(&request("redirected", &opts)).await.unwrap_err();
    assert!(matches!(err, IdpError::InvalidResponse(_)), "{err:?}");
    let msg = err.public_message();
    assert!(
        msg.contains(&format!("is on {}", elsewhere.base))
            && msg.contains(&format!(
                "registration endpoint's origin {}",
                idp.base_url()
            ))
            && msg.contains("dcr_options.registration_client_uri_origins")
            && msg.contains("the client was deleted at the identity provider again"),
        "{msg}"
    );
    assert!(
        elsewhere.seen().is_empty(),
        "nothing was sent to the other origin"
    );
    assert!(idp_clients(&idp).await.is_empty(), "no orphan");

    // A management answer naming another origin: the rotated RAT survives with the old URI.
    idp.set_registration_client_uri_origin(None).await.unwrap();
    let reg = d.register(&request("kept", &opts)).await.unwrap();
    idp.set_registration_client_uri_origin(Some(&elsewhere.base))
        .await
        .unwrap();
    let err = d.read(&reg.handle()).await.unwrap_err();
    assert!(
        matches!(err.root(), IdpError::InvalidResponse(m) if m.contains("is on")),
        "{err:?}"
    );
    let latest = err.latest_registration().expect("the new RAT").handle();
    assert_eq!(latest.registration_client_uri, reg.registration_client_uri);
    assert_ne!(
        latest.registration_access_token,
        reg.registration_access_token
    );
    // A stored URI on another origin is not used either.
    let mut moved = latest.clone();
    moved.registration_client_uri = Some(format!("{}/reg/{}", elsewhere.base, reg.client_id));
    let err = d.delete(&moved).await.unwrap_err();
    assert!(err.public_message().contains("is on"), "{err:?}");
    assert!(elsewhere.seen().is_empty());
    idp.set_registration_client_uri_origin(None).await.unwrap();
    d.delete(&latest).await.unwrap();

    // The IdP names its "public" address (localhost) while Gatehouse calls 127.0.0.1: refused
    // by default, accepted once that origin is listed.
    let public = format!("http://localhost:{}", idp.port());
    idp.set_registration_client_uri_origin(Some(&public))
        .await
        .unwrap();
    let err = d.register(&request("public-1", &opts)).await.unwrap_err();
    assert!(err.public_message().contains(&format!("is on {public}")));
    let listed = DcrOptions {
        registration_client_uri_origins: vec![public.clone()],
        ..opts.clone()
    };
    let d = driver(&listed);
    let reg = d.register(&request("public-2", &listed)).await.unwrap();
    let uri = reg.registration_client_uri.clone().unwrap();
    assert!(uri.starts_with(&format!("{public}/")), "{uri}");
    let read = d.read(&reg.handle()).await.unwrap();
    d.delete(&read.handle()).await.unwrap();
    assert!(idp_clients(&idp).await.is_empty());

    // `other` has no URI of its own to fall back on: it says the client is left at the IdP.
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let opts = options(&idp, Provider::Other);
    idp.set_registration_client_uri_origin(Some(&elsewhere.base))
        .await
        .unwrap();
    let err = driver(&opts)
        .register(&request("stranded", &opts))
        .await
        .unwrap_err();
    let ids = idp_clients(&idp).await;
    assert_eq!(ids.len(), 1);
    let msg = err.public_message();
    assert!(
        msg.contains("no safe address to delete it at")
            && msg.contains(&format!("delete client \"{}\"", ids[0])),
        "{msg}"
    );
    assert!(elsewhere.seen().is_empty());
}
