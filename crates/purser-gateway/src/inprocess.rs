//! The engine's two dependencies inside Purser: the facilitator service called in process, and
//! a replay guard on the coordination backend (Redis, or in-process on the embedded default).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use purser_axum::{FacilitatorError, ReplayGuard};
use purser_domain::ErrorCode;
use purser_domain::auth::TenantScope;
use purser_domain::coord::Coordination;
use purser_facilitator::Facilitator;
use purser_x402::facilitator::{SettleResponse, VerifyResponse};
use purser_x402::v2::{PaymentPayload, PaymentRequirements};
use serde_json::json;

/// Purser's facilitator, settling for one tenant.
pub struct InProcessFacilitator {
    facilitator: Arc<Facilitator>,
    scope: TenantScope,
}

impl InProcessFacilitator {
    pub fn new(facilitator: Arc<Facilitator>, scope: TenantScope) -> Self {
        Self { facilitator, scope }
    }
}

fn body(payload: &PaymentPayload, requirements: &PaymentRequirements) -> Vec<u8> {
    json!({
        "x402Version": 2,
        "paymentPayload": payload,
        "paymentRequirements": requirements,
    })
    .to_string()
    .into_bytes()
}

fn failure(error: purser_domain::Error) -> FacilitatorError {
    match error.code() {
        ErrorCode::PaymentIdentifierConflict => {
            FacilitatorError::Conflict(error.message().to_owned())
        }
        code if code.http_status() < 500 => FacilitatorError::Refused {
            code: code.as_str().to_owned(),
            message: error.message().to_owned(),
        },
        _ => FacilitatorError::Unavailable(error.message().to_owned()),
    }
}

#[async_trait]
impl purser_axum::Facilitator for InProcessFacilitator {
    async fn verify(
        &self,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<VerifyResponse, FacilitatorError> {
        self.facilitator
            .verify(&body(payload, requirements))
            .await
            .map_err(failure)
    }

    async fn settle(
        &self,
        payload: &PaymentPayload,
        requirements: &PaymentRequirements,
    ) -> Result<SettleResponse, FacilitatorError> {
        self.facilitator
            .settle(self.scope, &body(payload, requirements))
            .await
            .map_err(failure)
    }
}

/// Payments already presented, in the coordination backend: every instance sees them.
pub struct CoordReplayGuard {
    coordination: Arc<dyn Coordination>,
}

impl CoordReplayGuard {
    pub fn new(coordination: Arc<dyn Coordination>) -> Self {
        Self { coordination }
    }

    fn key(key: &str) -> String {
        format!("gateway:payment:{key}")
    }
}

#[async_trait]
impl ReplayGuard for CoordReplayGuard {
    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Option<String>, String> {
        let key = Self::key(key);
        let stored = self
            .coordination
            .put_if_absent(&key, value.as_bytes(), ttl)
            .await
            .map_err(|e| e.to_string())?;
        if stored {
            return Ok(None);
        }
        let existing = self
            .coordination
            .get(&key)
            .await
            .map_err(|e| e.to_string())?;
        // Gone in between (expired or released): the claim may be taken again.
        match existing {
            Some(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            None => self
                .coordination
                .put_if_absent(&key, value.as_bytes(), ttl)
                .await
                .map(|stored| (!stored).then(String::new))
                .map_err(|e| e.to_string()),
        }
    }

    async fn release(&self, key: &str) {
        if let Err(e) = self.coordination.delete(&Self::key(key)).await {
            tracing::warn!(error = %e, "releasing a payment claim");
        }
    }
}
