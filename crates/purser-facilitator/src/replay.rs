//! When a stored settlement may answer a request: only when the request asks for what was
//! settled.
//!
//! An authorization is settled once, against one set of requirements. Presented again, its
//! record's outcome (success, pending, failure) is the answer only for a request from the same
//! tenant, with the same signed transfer, for the same requirements: the same network, asset,
//! amount and `payTo`, and the same requirements otherwise (scheme, timeout, `extra` and any
//! field this crate does not know). Requirements are compared as values, not bytes: addresses
//! and other `0x` hex strings ignore case, JSON objects ignore key order. Anything else is not a
//! retry of that payment and is judged as a new one would be (and refused, since the
//! authorization is taken), never answered with another request's outcome.
//!
//! [`Facilitator::settle`](crate::Facilitator::settle) applies this both to a claimed
//! authorization and to a `payment-identifier`'s stored response (whose payload hash does not
//! cover the requirements); the gateway's paths that answer a stored settlement ask
//! [`Facilitator::settled_as_requested`](crate::Facilitator::settled_as_requested).

use purser_chain::eip3009::ExactTransfer;
use purser_domain::id::TenantId;
use purser_domain::settlement::Settlement;
use purser_x402::{PaymentPayload, PaymentRequirements};
use serde_json::Value;

use crate::service::Prepared;
use crate::work::Work;

/// Whether `settlement` settled what `prepared`, a request of `tenant`'s, asks for.
pub(crate) fn settles(settlement: &Settlement, tenant: TenantId, prepared: &Prepared) -> bool {
    let requirements = &prepared.requirements;
    settlement.tenant_id == tenant
        && same_authorization(settlement, prepared)
        && settlement.key.network == prepared.rail.network
        && settlement
            .key
            .asset
            .eq_ignore_ascii_case(&format!("{:#x}", prepared.asset.address))
        && settlement.pay_to.eq_ignore_ascii_case(&requirements.pay_to)
        // What the work moves: the required amount, or an escrow operation's own (a void's is
        // whatever was held when it was claimed).
        && prepared
            .work
            .amount(requirements.amount)
            .is_none_or(|amount| settlement.amount == amount)
        && serde_json::from_str::<PaymentRequirements>(&settlement.requirements)
            .is_ok_and(|settled| same_requirements(&settled, requirements))
}

/// Whether a claimed settlement is for the same signed authorization as this request: the
/// same transfer for `exact`; the same payload, compared as values, for an escrow call.
fn same_authorization(existing: &Settlement, prepared: &Prepared) -> bool {
    let Ok(payload) = serde_json::from_str::<PaymentPayload>(&existing.payload) else {
        return false;
    };
    match &prepared.work {
        Work::Exact(transfer) => payload
            .exact_evm()
            .is_ok_and(|exact| ExactTransfer::from_payload(&exact) == *transfer),
        Work::Escrow(_) => same_objects(&payload.payload, &prepared.payload.payload),
    }
}

/// The same requirements, compared as values.
fn same_requirements(a: &PaymentRequirements, b: &PaymentRequirements) -> bool {
    a.scheme == b.scheme
        && a.network == b.network
        && a.amount == b.amount
        && a.asset.eq_ignore_ascii_case(&b.asset)
        && a.pay_to.eq_ignore_ascii_case(&b.pay_to)
        && a.max_timeout_seconds == b.max_timeout_seconds
        && match (&a.extra, &b.extra) {
            (None, None) => true,
            (Some(a), Some(b)) => same_objects(a, b),
            _ => false,
        }
        && same_objects(&a.other, &b.other)
}

fn same_objects(a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(key, value)| b.get(key).is_some_and(|other| same_value(value, other)))
}

/// JSON equality, except that `0x` hex strings (addresses, hashes) ignore case.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => {
            a == b || (is_hex(a) && is_hex(b) && a.eq_ignore_ascii_case(b))
        }
        (Value::Object(a), Value::Object(b)) => same_objects(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

fn is_hex(s: &str) -> bool {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn requirements(bend: impl FnOnce(&mut Value)) -> PaymentRequirements {
        let mut value = json!({
            "scheme": "exact",
            "network": "eip155:84532",
            "amount": "10000",
            "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            "maxTimeoutSeconds": 60,
            "extra": { "name": "USDC", "version": "2", "feeRecipient": "0xAbCd00000000000000000000000000000000Ef01" },
            "outputHint": { "kind": "json", "tags": ["a", "b"] },
        });
        bend(&mut value);
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn requirements_are_compared_as_values() {
        let settled = requirements(|_| {});
        // Retries that differ only in how the same thing is written.
        let lower_case = requirements(|r| {
            for field in ["asset", "payTo"] {
                r[field] = json!(r[field].as_str().unwrap().to_ascii_lowercase());
            }
            r["extra"]["feeRecipient"] = json!("0xabcd00000000000000000000000000000000ef01");
        });
        assert!(same_requirements(&settled, &lower_case));
        let reordered: PaymentRequirements = serde_json::from_str(
            r#"{"outputHint":{"tags":["a","b"],"kind":"json"},"extra":{"feeRecipient":"0xAbCd00000000000000000000000000000000Ef01","version":"2","name":"USDC"},
                "maxTimeoutSeconds":60,"payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","amount":"10000",
                "network":"eip155:84532","scheme":"exact"}"#,
        )
        .unwrap();
        assert!(same_requirements(&settled, &reordered));

        type Bend = fn(&mut Value);
        let others: Vec<(&str, Bend)> = vec![
            ("amount", |r| r["amount"] = json!("10001")),
            ("payTo", |r| {
                r["payTo"] = json!("0x0000000000000000000000000000000000000001")
            }),
            ("asset", |r| {
                r["asset"] = json!("0x0000000000000000000000000000000000000002")
            }),
            ("network", |r| r["network"] = json!("eip155:8453")),
            ("scheme", |r| r["scheme"] = json!("upto")),
            ("timeout", |r| r["maxTimeoutSeconds"] = json!(61)),
            ("extra added", |r| {
                r["extra"]["assetTransferMethod"] = json!("eip3009")
            }),
            ("extra removed", |r| {
                r.as_object_mut().unwrap().remove("extra");
            }),
            ("extra changed", |r| r["extra"]["version"] = json!("1")),
            ("unknown field", |r| r["outputHint"]["kind"] = json!("csv")),
            ("unknown field dropped", |r| {
                r.as_object_mut().unwrap().remove("outputHint");
            }),
            ("array order", |r| {
                r["outputHint"]["tags"] = json!(["b", "a"])
            }),
            ("case of a word", |r| r["extra"]["name"] = json!("usdc")),
        ];
        for (what, bend) in others {
            let other = requirements(bend);
            assert!(!same_requirements(&settled, &other), "{what}");
            assert!(!same_requirements(&other, &settled), "{what}");
        }
    }

    #[test]
    fn only_0x_hex_ignores_case() {
        assert!(is_hex("0xAbC0"));
        assert!(!is_hex("0x"));
        assert!(!is_hex("0xnothex"));
        assert!(!is_hex("AbC0"));
        assert!(!same_value(&json!("USDC"), &json!("usdc")));
        assert!(same_value(&json!("0xABCD"), &json!("0xabcd")));
        assert!(!same_value(&json!(1), &json!("1")));
    }
}
