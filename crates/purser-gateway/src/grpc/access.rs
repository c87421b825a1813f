//! `purser.access.v1.AccessService`: `/v1/access/check` and `/v1/access/settle` over gRPC,
//! deciding through the same functions.

use tonic::{Request, Response, Status};

use super::access_v1::{
    self, Allow, CheckResponse, SettleResponse, check_response, settle_response,
};
use super::{caller, http_answer, status_of};
use crate::check::{AccessState, CheckRequest, Decision, SettleToken, header_map, header_pairs};

pub struct AccessService {
    state: AccessState,
}

impl AccessService {
    pub fn new(state: AccessState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl access_v1::access_service_server::AccessService for AccessService {
    async fn check(
        &self,
        request: Request<access_v1::CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let scope = caller(&self.state, request.metadata()).await?;
        let request = request.into_inner();
        let headers = header_map(&request.headers);
        let decision = self
            .state
            .check(
                scope,
                &CheckRequest {
                    method: &request.method,
                    url: &request.url,
                    resource: Some(request.resource.as_str()).filter(|r| !r.is_empty()),
                    headers: &headers,
                },
            )
            .await
            .map_err(status_of)?;
        let decision = match decision {
            Decision::Allow { payer, settle } => check_response::Decision::Allow(Allow {
                payer,
                settle_token: settle.encode(),
                grant_id: String::new(),
                session: String::new(),
            }),
            Decision::Entitled {
                wallet,
                grant,
                session,
            } => check_response::Decision::Allow(Allow {
                payer: wallet,
                settle_token: String::new(),
                grant_id: grant.to_string(),
                session: session.unwrap_or_default(),
            }),
            Decision::Deny(reply) => check_response::Decision::Deny(http_answer(reply)),
        };
        Ok(Response::new(CheckResponse {
            decision: Some(decision),
        }))
    }

    async fn settle(
        &self,
        request: Request<access_v1::SettleRequest>,
    ) -> Result<Response<SettleResponse>, Status> {
        let scope = caller(&self.state, request.metadata()).await?;
        let token = SettleToken::decode(&request.get_ref().settle_token).map_err(status_of)?;
        let outcome = match self.state.settle(scope, token).await.map_err(status_of)? {
            purser_axum::Settled::Paid { response, headers } => {
                settle_response::Outcome::Settled(access_v1::Settled {
                    headers: header_pairs(&headers).into_iter().collect(),
                    transaction: response.transaction.clone(),
                    network: response.network.clone(),
                    payer: response.payer.clone().unwrap_or_default(),
                    pending: response.is_pending(),
                    response: serde_json::to_string(&response).unwrap_or_default(),
                })
            }
            purser_axum::Settled::Refused(reply) => {
                settle_response::Outcome::Refused(http_answer(reply))
            }
        };
        Ok(Response::new(SettleResponse {
            outcome: Some(outcome),
        }))
    }
}
