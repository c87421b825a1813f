//! Matching a payload's `accepted` against the requirements a resource server offered.
//!
//! The rule is the SDK 2.27 resource server's (`paymentRequirementsMatchAccepted`), which is
//! deep JSON equality on everything except `extra`, and a *subset* test on `extra`: every key
//! the server put in `extra` must be in the client's `extra` with a matching value (objects
//! recursively, everything else by equality), and the client may add keys. If the server sent
//! no `extra`, any `accepted.extra` matches. (No SDK scheme declares the "dynamic" extra fields
//! the SDK can exclude, so none are excluded here.) Unknown fields (`other`) count as core
//! fields: a client that invents or drops one does not match.
//!
//! Comparison is on the typed values re-serialized, so two spellings of one amount (`"010"`,
//! `"10"`) are equal here where the SDK compares strings; every other field compares as
//! written, addresses included (`0xAB…` and `0xab…` differ, as in the SDK).
//!
//! A facilitator must still verify against the server's requirements, not against `accepted`:
//! the client-added `extra` keys this rule lets through are the client's word only.

use serde_json::Value;

use crate::v2::{PaymentPayload, PaymentRequirements};

/// Whether `accepted` (from a client's payload) matches `offered` (from the server's 402).
pub fn accepted_matches(offered: &PaymentRequirements, accepted: &PaymentRequirements) -> bool {
    let core = |r: &PaymentRequirements| {
        let mut v = serde_json::to_value(r).expect("requirements serialize");
        if let Value::Object(map) = &mut v {
            map.remove("extra");
        }
        v
    };
    if core(offered) != core(accepted) {
        return false;
    }
    match (&offered.extra, &accepted.extra) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(expected), Some(actual)) => expected
            .iter()
            .all(|(k, v)| actual.get(k).is_some_and(|a| contains_subset(v, a))),
    }
}

/// The SDK's `objectContainsSubset` without additive fields: objects recursively, anything
/// else (arrays included) by equality.
fn contains_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains_subset(v, av))),
        (Value::Object(_), _) => false,
        _ => expected == actual,
    }
}

/// The first offered requirements that the payload's `accepted` matches.
pub fn find_accepted<'a>(
    offered: &'a [PaymentRequirements],
    payload: &PaymentPayload,
) -> Option<&'a PaymentRequirements> {
    offered
        .iter()
        .find(|o| accepted_matches(o, &payload.accepted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> PaymentRequirements {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "scheme": "exact", "network": "eip155:84532", "amount": "10000",
            "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2", "nested": {"a": 1}}
        })
    }

    #[test]
    fn core_fields_must_be_equal() {
        let offered = req(base());
        assert!(accepted_matches(&offered, &offered.clone()));
        for (k, v) in [
            ("amount", json!("10001")),
            ("network", json!("eip155:8453")),
            ("payTo", json!("0x209693bc6afc0c5328ba36faf03c514ef312287c")),
            ("maxTimeoutSeconds", json!(61)),
            ("scheme", json!("upto")),
            ("newField", json!(1)),
        ] {
            let mut a = base();
            a[k] = v;
            assert!(!accepted_matches(&offered, &req(a)), "{k}");
        }
    }

    #[test]
    fn extra_is_a_subset_test() {
        let offered = req(base());
        let mut more = base();
        more["extra"]["assetTransferMethod"] = json!("eip3009");
        more["extra"]["nested"]["b"] = json!(2);
        assert!(accepted_matches(&offered, &req(more)));

        let mut changed = base();
        changed["extra"]["version"] = json!("1");
        assert!(!accepted_matches(&offered, &req(changed)));
        let mut dropped = base();
        dropped["extra"].as_object_mut().unwrap().remove("name");
        assert!(!accepted_matches(&offered, &req(dropped)));
        let mut none = base();
        none.as_object_mut().unwrap().remove("extra");
        assert!(!accepted_matches(&offered, &req(none.clone())));
        // The server sent no extra: anything the client adds is fine.
        assert!(accepted_matches(&req(none), &offered));
        let mut arr = base();
        arr["extra"]["nested"] = json!([1]);
        assert!(!accepted_matches(&offered, &req(arr)));
    }
}
