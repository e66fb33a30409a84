//! The Tyk import: a file's JSON split into API definitions and policies, each validated as the
//! admin API and `gatehouse import tyk` do. Invariant: whatever validates can be read back as the
//! gateway reads stored documents (`from_stored`).
#![no_main]

use gatehouse_domain::api::{self, ApiDefinition};
use gatehouse_domain::import;
use gatehouse_domain::policy::{self, Policy};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for item in import::split_apis(doc.clone()) {
        let _ = import::name_of(&item);
        if let Ok(v) = api::validate_api(item, None) {
            let def = ApiDefinition::from_stored(&v.raw).expect("a validated API reads back");
            let _ = (def.auth_mode(), def.jwt_auth_config(), def.scope_mapping());
            let lp = &v.def.proxy.listen_path;
            assert_eq!(
                api::normalize_listen_path(lp).as_deref(),
                Ok(lp.as_str()),
                "the stored listen path is normalised"
            );
            let id = v.def.api_id.clone();
            api::validate_api(v.raw, Some(&id)).expect("a stored API validates again");
        }
    }
    if let Ok(policies) = import::split_policies(doc) {
        for p in policies {
            if let Ok(v) = policy::validate_policy(p, None) {
                Policy::from_stored(&v.raw).expect("a validated policy reads back");
                let id = v.policy.id.clone();
                policy::validate_policy(v.raw, Some(&id)).expect("a stored policy validates again");
            }
        }
    }
});
