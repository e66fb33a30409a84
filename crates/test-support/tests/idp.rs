//! Runs the real test IdP (`testing/idp/server.mjs`, oidc-provider) in its three shapes.
//! Needs `npm ci --prefix testing/idp`.

use std::time::{Duration, Instant};

use gatehouse_test_support::idp::{IdpOptions, IdpShape, TestIdp, decode_jwt};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

fn cc_client(name: &str, extra: Value) -> Value {
    let mut md = json!({
        "client_name": name,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "read write",
    });
    for (k, v) in extra.as_object().expect("object") {
        md[k] = v.clone();
    }
    md
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
        .to_owned()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn jwks(idp: &TestIdp) -> JwkSet {
    serde_json::from_value(idp.jwks().await.unwrap()).expect("a JWKS")
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

/// Verifies `token` against the IdP's published JWKS (kid, alg, signature, iss, aud, exp) and
/// returns `(header, claims)`.
async fn verify(idp: &TestIdp, token: &str, alg: Algorithm) -> (Value, Value) {
    let (header, claims) = decode_jwt(token).unwrap();
    let kid = header["kid"].as_str().expect("kid in header");
    let set = jwks(idp).await;
    let jwk = set
        .find(kid)
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS {:?}", kids(&set)));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_issuer(&[idp.issuer()]);
    v.set_audience(&[idp.audience()]);
    jsonwebtoken::decode::<Value>(token, &key, &v).expect("token verifies with the published key");
    (header, claims)
}

#[tokio::test]
async fn plain_shape_registration_tokens_and_rfc7592() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let base = idp.base_url();
    assert_eq!(idp.issuer(), base);
    let disco = idp.discovery().await.unwrap();
    assert_eq!(disco["issuer"], json!(idp.issuer()));
    assert_eq!(disco["jwks_uri"], json!(idp.jwks_uri()));
    assert_eq!(disco["token_endpoint"], json!(idp.token_endpoint()));
    assert_eq!(
        disco["registration_endpoint"],
        json!(idp.registration_endpoint())
    );

    // RS256 client with pol.
    let a = idp
        .register_client(cc_client("plain-a", json!({ "pol": "gold" })))
        .await
        .unwrap();
    assert!(a["registration_access_token"].is_string());
    assert!(s(&a, "registration_client_uri").starts_with(&base));
    let (a_id, a_secret) = (s(&a, "client_id"), s(&a, "client_secret"));
    let token = idp
        .client_credentials_token(&a_id, &a_secret, Some("read"))
        .await
        .unwrap();
    let (header, claims) = verify(&idp, &token, Algorithm::RS256).await;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["client_id"], json!(a_id));
    assert_eq!(claims["sub"], json!(a_id));
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["pol"], "gold");
    // Without a scope parameter the client's registered scopes are granted.
    let token = idp
        .client_credentials_token(&a_id, &a_secret, None)
        .await
        .unwrap();
    assert_eq!(decode_jwt(&token).unwrap().1["scope"], "read write");

    // ES256 client without pol.
    let b = idp
        .register_client(cc_client("plain-b", json!({ "gh_token_alg": "ES256" })))
        .await
        .unwrap();
    let token = idp
        .client_credentials_token(&s(&b, "client_id"), &s(&b, "client_secret"), None)
        .await
        .unwrap();
    let (header, claims) = verify(&idp, &token, Algorithm::ES256).await;
    assert_eq!(header["alg"], "ES256");
    assert!(claims.get("pol").is_none(), "no pol claim: {claims}");
    assert_eq!(claims["sub"], json!(s(&b, "client_id")));

    // Wrong secret.
    let (status, body) = idp
        .client_credentials_raw(&a_id, "wrong", None)
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");

    // Wrong / missing initial access token.
    let md = cc_client("plain-c", json!({}));
    let (status, _) = idp
        .register_client_raw(&md, Some("Bearer not-the-iat"))
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = idp.register_client_raw(&md, Some("")).await.unwrap();
    assert_eq!(status, 401);

    // RFC 7592: GET (no rotation in plain), PUT (rotates), DELETE.
    let uri = s(&a, "registration_client_uri");
    let rat = s(&a, "registration_access_token");
    let c = http();
    for _ in 0..2 {
        let r = c.get(&uri).bearer_auth(&rat).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut update = cc_client("plain-a-renamed", json!({ "pol": "silver" }));
    update["client_id"] = json!(a_id);
    let r = c
        .put(&uri)
        .bearer_auth(&rat)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["client_name"], "plain-a-renamed");
    let rat2 = s(&updated, "registration_access_token");
    assert_ne!(rat, rat2, "PUT rotates the registration access token");
    let r = c.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 401, "the old RAT is dead after PUT");
    let token = idp
        .client_credentials_token(&a_id, &a_secret, None)
        .await
        .unwrap();
    assert_eq!(decode_jwt(&token).unwrap().1["pol"], "silver");

    let r = c.delete(&uri).bearer_auth(&rat2).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (status, body) = idp
        .client_credentials_raw(&a_id, &a_secret, None)
        .await
        .unwrap();
    assert_eq!(status, 401, "deleted client refused: {body}");
    assert_eq!(body["error"], "invalid_client");
    let r = c.delete(&uri).bearer_auth(&rat2).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn okta_shape_paths_sswss_claims_and_management() {
    let idp = TestIdp::start(IdpShape::Okta).await.unwrap();
    let base = idp.base_url();
    assert_eq!(idp.issuer(), format!("{base}/oauth2/default"));
    assert_eq!(
        idp.token_endpoint(),
        format!("{base}/oauth2/default/v1/token")
    );
    assert_eq!(idp.jwks_uri(), format!("{base}/oauth2/default/v1/keys"));
    assert_eq!(
        idp.registration_endpoint(),
        format!("{base}/oauth2/v1/clients")
    );
    let c = http();
    for well_known in ["openid-configuration", "oauth-authorization-server"] {
        let d: Value = c
            .get(format!("{base}/oauth2/default/.well-known/{well_known}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["issuer"], json!(idp.issuer()));
        assert_eq!(d["token_endpoint"], json!(idp.token_endpoint()));
        assert_eq!(d["jwks_uri"], json!(idp.jwks_uri()));
        assert_eq!(
            d["registration_endpoint"],
            json!(idp.registration_endpoint())
        );
    }

    let service = json!({
        "client_name": "okta-svc",
        "application_type": "service",
        "grant_types": ["client_credentials"],
        "response_types": ["token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "read write",
        "pol": "gold",
    });
    // Bearer is refused with Okta's error shape; only SSWS works.
    let bearer = format!("Bearer {}", idp.initial_access_token());
    let (status, body) = idp
        .register_client_raw(&service, Some(&bearer))
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["errorCode"], "E0000011");
    assert_eq!(body["errorSummary"], "Invalid token provided");
    assert!(body["errorId"].is_string() && body["errorLink"].is_string());
    assert_eq!(body["errorCauses"], json!([]));
    let (status, body) = idp
        .register_client_raw(&service, Some("SSWS wrong"))
        .await
        .unwrap();
    assert_eq!(
        (status, body["errorCode"].clone()),
        (401, json!("E0000011"))
    );

    let a = idp.register_client(service.clone()).await.unwrap();
    assert!(a.get("registration_access_token").is_none(), "{a}");
    assert!(a.get("registration_client_uri").is_none(), "{a}");
    assert_eq!(a["application_type"], "service");
    assert_eq!(a["response_types"], json!(["token"]));
    let (a_id, a_secret) = (s(&a, "client_id"), s(&a, "client_secret"));

    // Duplicate client_name.
    let (status, body) = idp.register_client_raw(&service, None).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "E0000001");
    assert_eq!(body["errorSummary"], "Api validation failed: client_name");
    assert!(
        body["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap()
            .contains("client_name")
    );

    // Token claims: cid, scp array, no scope string, sub = client id, no uid.
    let token = idp
        .client_credentials_token(&a_id, &a_secret, Some("read write"))
        .await
        .unwrap();
    let (header, claims) = verify(&idp, &token, Algorithm::RS256).await;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["cid"], json!(a_id));
    assert_eq!(claims["sub"], json!(a_id));
    assert_eq!(claims["scp"], json!(["read", "write"]));
    assert_eq!(claims["aud"], "api://default");
    assert_eq!(claims["pol"], "gold");
    for absent in ["scope", "uid", "client_id"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }

    // ES256 client without pol.
    let mut es = service.clone();
    es["client_name"] = json!("okta-es");
    es.as_object_mut().unwrap().remove("pol");
    es["gh_token_alg"] = json!("ES256");
    let b = idp.register_client(es).await.unwrap();
    let token = idp
        .client_credentials_token(&s(&b, "client_id"), &s(&b, "client_secret"), None)
        .await
        .unwrap();
    let (header, claims) = verify(&idp, &token, Algorithm::ES256).await;
    assert_eq!(header["alg"], "ES256");
    assert!(claims.get("pol").is_none());
    assert_eq!(claims["scp"], json!(["read", "write"]));

    // Management with the same SSWS token.
    let client_url = format!("{base}/oauth2/v1/clients/{a_id}");
    let ssws = format!("SSWS {}", idp.initial_access_token());
    let r = c
        .get(&client_url)
        .bearer_auth(idp.initial_access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Bearer refused on management too");
    let r = c
        .get(&client_url)
        .header("authorization", &ssws)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["client_name"], "okta-svc");

    let mut renamed = service.clone();
    renamed["client_name"] = json!("okta-svc-renamed");
    let r = c
        .put(&client_url)
        .header("authorization", &ssws)
        .json(&renamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let put: Value = r.json().await.unwrap();
    assert_eq!(put["client_name"], "okta-svc-renamed");
    assert!(put.get("registration_access_token").is_none());

    // newSecret: the old secret stops working.
    let r = c
        .post(format!("{client_url}/lifecycle/newSecret"))
        .header("authorization", &ssws)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    let new_secret = s(&fresh, "client_secret");
    assert_ne!(new_secret, a_secret);
    let (status, _) = idp
        .client_credentials_raw(&a_id, &a_secret, None)
        .await
        .unwrap();
    assert_eq!(status, 401, "old secret refused");
    idp.client_credentials_token(&a_id, &new_secret, None)
        .await
        .expect("new secret works");

    // DELETE: the token endpoint refuses the client.
    let r = c
        .delete(&client_url)
        .header("authorization", &ssws)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = idp
        .client_credentials_raw(&a_id, &new_secret, None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let r = c
        .get(&client_url)
        .header("authorization", &ssws)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn keycloak_shape_paths_claims_and_rat_rotation() {
    let idp = TestIdp::start_with(
        IdpShape::Keycloak,
        IdpOptions {
            realm: Some("acme".into()),
            initial_access_token: Some("kc-iat".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = idp.base_url();
    let realm = format!("{base}/realms/acme");
    assert_eq!(idp.issuer(), realm);
    assert_eq!(idp.initial_access_token(), "kc-iat");
    assert_eq!(
        idp.token_endpoint(),
        format!("{realm}/protocol/openid-connect/token")
    );
    assert_eq!(
        idp.jwks_uri(),
        format!("{realm}/protocol/openid-connect/certs")
    );
    assert_eq!(
        idp.registration_endpoint(),
        format!("{realm}/clients-registrations/openid-connect")
    );
    let disco = idp.discovery().await.unwrap();
    assert_eq!(disco["issuer"], json!(realm));
    assert_eq!(
        disco["registration_endpoint"],
        json!(idp.registration_endpoint())
    );

    let (status, _) = idp
        .register_client_raw(&cc_client("kc-x", json!({})), Some("Bearer wrong"))
        .await
        .unwrap();
    assert_eq!(status, 401);

    // Keycloak accepts a client-credentials client without response_types.
    let a = idp
        .register_client(json!({
            "client_name": "kc-a",
            "grant_types": ["client_credentials"],
            "scope": "read write",
            "pol": "gold",
        }))
        .await
        .unwrap();
    let (a_id, a_secret) = (s(&a, "client_id"), s(&a, "client_secret"));
    let uri = s(&a, "registration_client_uri");
    assert_eq!(
        uri,
        format!("{realm}/clients-registrations/openid-connect/{a_id}")
    );

    let token = idp
        .client_credentials_token(&a_id, &a_secret, Some("read"))
        .await
        .unwrap();
    let (header, claims) = verify(&idp, &token, Algorithm::RS256).await;
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["azp"], json!(a_id));
    assert_eq!(claims["typ"], "Bearer");
    assert_eq!(claims["scope"], "read");
    assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(claims["pol"], "gold");

    let b = idp
        .register_client(cc_client("kc-b", json!({ "gh_token_alg": "ES256" })))
        .await
        .unwrap();
    let token = idp
        .client_credentials_token(&s(&b, "client_id"), &s(&b, "client_secret"), None)
        .await
        .unwrap();
    let (_, claims) = verify(&idp, &token, Algorithm::ES256).await;
    assert!(claims.get("pol").is_none());
    assert_eq!(claims["scope"], "read write");

    // The RAT rotates on every use, GET included.
    let c = http();
    let rat1 = s(&a, "registration_access_token");
    let r = c.get(&uri).bearer_auth(&rat1).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    let rat2 = s(&got, "registration_access_token");
    assert_ne!(rat1, rat2);
    let r = c.get(&uri).bearer_auth(&rat1).send().await.unwrap();
    assert_eq!(r.status(), 401, "old RAT dead after GET");
    let mut update = json!({
        "client_id": a_id,
        "client_name": "kc-a2",
        "grant_types": ["client_credentials"],
        "scope": "read",
    });
    let r = c
        .put(&uri)
        .bearer_auth(&rat2)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let put: Value = r.json().await.unwrap();
    let rat3 = s(&put, "registration_access_token");
    assert_ne!(rat2, rat3);
    update["client_name"] = json!("kc-a3");
    let r = c
        .put(&uri)
        .bearer_auth(&rat2)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "old RAT dead after PUT");

    let r = c.delete(&uri).bearer_auth(&rat3).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = idp
        .client_credentials_raw(&a_id, &a_secret, None)
        .await
        .unwrap();
    assert_eq!(status, 401, "deleted client refused");
}

#[tokio::test]
async fn rotation_sign_and_stats() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let a = idp
        .register_client(cc_client("rot", json!({})))
        .await
        .unwrap();
    let (id, secret) = (s(&a, "client_id"), s(&a, "client_secret"));

    let before = kids(&jwks(&idp).await);
    assert_eq!(before.len(), 2);
    let t1 = idp
        .client_credentials_token(&id, &secret, None)
        .await
        .unwrap();
    let kid1 = decode_jwt(&t1).unwrap().0["kid"].clone();
    assert_eq!(kid1, json!(before[0]));

    // Rotation without keeping the old keys.
    let published = idp.rotate_keys(false).await.unwrap();
    assert_eq!(published.len(), 2);
    assert!(published.iter().all(|k| !before.contains(k)));
    assert_eq!(kids(&jwks(&idp).await), published);
    let t2 = idp
        .client_credentials_token(&id, &secret, None)
        .await
        .unwrap();
    let (h2, _) = verify(&idp, &t2, Algorithm::RS256).await;
    assert_eq!(h2["kid"], json!(published[0]));
    assert_ne!(h2["kid"], kid1);

    // Rotation keeping the old keys: new first, old after.
    let published2 = idp.rotate_keys(true).await.unwrap();
    assert_eq!(published2.len(), 4);
    assert_eq!(&published2[2..], &published[..]);
    let t3 = idp
        .client_credentials_token(&id, &secret, None)
        .await
        .unwrap();
    assert_eq!(decode_jwt(&t3).unwrap().0["kid"], json!(published2[0]));
    verify(&idp, &t2, Algorithm::RS256).await; // old token still verifies

    // /__test/sign with the real keys.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": idp.issuer(), "aud": idp.audience(), "sub": "someone",
        "iat": now, "exp": now + 60, "pol": "p",
    });
    let rs = idp.sign(claims.clone(), "RS256", json!({})).await.unwrap();
    let (h, c) = verify(&idp, &rs, Algorithm::RS256).await;
    assert_eq!(h["kid"], json!(published2[0]));
    assert_eq!(c["pol"], "p");
    let es = idp.sign(claims.clone(), "ES256", json!({})).await.unwrap();
    let (h, _) = verify(&idp, &es, Algorithm::ES256).await;
    assert_eq!(h["kid"], json!(published2[1]));
    // Header overrides, e.g. an unknown kid or none at all.
    let odd = idp
        .sign(
            claims.clone(),
            "RS256",
            json!({ "kid": "nope", "typ": "at+jwt" }),
        )
        .await
        .unwrap();
    let (h, _) = decode_jwt(&odd).unwrap();
    assert_eq!(
        (h["kid"].clone(), h["typ"].clone()),
        (json!("nope"), json!("at+jwt"))
    );
    let no_kid = idp
        .sign(json!({ "exp": now - 10 }), "RS256", json!({ "kid": null }))
        .await
        .unwrap();
    let (h, c) = decode_jwt(&no_kid).unwrap();
    assert!(h.get("kid").is_none());
    assert_eq!(c, json!({ "exp": now - 10 }));
    // A key that is not published: same kid, signature does not verify.
    let foreign = idp
        .sign_with(
            json!({ "claims": claims, "alg": "RS256", "foreign_key": true,
                           "header": { "kid": published2[0] } }),
        )
        .await
        .unwrap();
    let set = jwks(&idp).await;
    let key = DecodingKey::from_jwk(set.find(&published2[0]).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[idp.audience()]);
    assert!(jsonwebtoken::decode::<Value>(&foreign, &key, &v).is_err());

    // Stats and the JWKS delay.
    idp.reset_stats().await.unwrap();
    assert_eq!(idp.jwks_fetch_count().await, 0);
    for _ in 0..3 {
        idp.jwks().await.unwrap();
    }
    assert_eq!(idp.jwks_fetch_count().await, 3);
    idp.set_jwks_delay(400).await.unwrap();
    let t = Instant::now();
    idp.jwks().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(380),
        "{:?}",
        t.elapsed()
    );
    idp.set_jwks_delay(0).await.unwrap();
    let t = Instant::now();
    idp.jwks().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(380),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(idp.jwks_fetch_count().await, 5);
    idp.reset_stats().await.unwrap();
    assert_eq!(idp.jwks_fetch_count().await, 0);
}

#[tokio::test]
async fn restart_keeps_port_jwks_and_clients() {
    for shape in [IdpShape::Plain, IdpShape::Okta] {
        let mut idp = TestIdp::start(shape).await.unwrap();
        let port = idp.port();
        let iat = idp.initial_access_token().to_owned();
        let mut md = cc_client(&format!("restart-{shape}"), json!({ "pol": "kept" }));
        if shape == IdpShape::Okta {
            md["application_type"] = json!("service");
            md["response_types"] = json!(["token"]);
        }
        let a = idp.register_client(md).await.unwrap();
        let (id, secret) = (s(&a, "client_id"), s(&a, "client_secret"));
        idp.rotate_keys(true).await.unwrap();
        let before = idp.jwks().await.unwrap();

        idp.stop().await.unwrap();
        assert!(!idp.is_running());
        assert!(
            http().get(idp.jwks_uri()).send().await.is_err(),
            "stopped IdP does not answer"
        );
        idp.restart().await.unwrap();
        assert!(idp.is_running());
        assert_eq!(idp.port(), port);
        assert_eq!(idp.initial_access_token(), iat);
        assert_eq!(idp.jwks().await.unwrap(), before, "{shape}: same JWKS");
        let token = idp
            .client_credentials_token(&id, &secret, None)
            .await
            .unwrap();
        let (_, claims) = verify(&idp, &token, Algorithm::RS256).await;
        assert_eq!(claims["pol"], "kept");

        match shape {
            IdpShape::Plain => {
                let r = http()
                    .get(s(&a, "registration_client_uri"))
                    .bearer_auth(s(&a, "registration_access_token"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "RAT survives the restart");
            }
            _ => {
                let r = http()
                    .get(format!("{}/oauth2/v1/clients/{id}", idp.base_url()))
                    .header("authorization", format!("SSWS {iat}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "Okta client survives the restart");
            }
        }
        // Restart without stop works too.
        idp.restart().await.unwrap();
        assert_eq!(idp.jwks().await.unwrap(), before);
    }
}
