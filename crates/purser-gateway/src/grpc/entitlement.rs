//! `purser.entitlement.v1.EntitlementService`: `/v1/entitlements/check` and the reservation
//! endpoints over gRPC, deciding through the same functions.

use purser_domain::Error;
use purser_domain::credits::CreditReservation;
use purser_domain::id::CreditReservationId;
use purser_domain::money::Amount;
use tonic::{Request, Response, Status};

use super::proto::purser::entitlement::v1::{
    self as entitlement_v1, Allow, CheckResponse, Deny, Grant, Reservation, allow, check_request,
    check_response,
};
use super::{caller, http_answer, status_of};
use crate::check::AccessState;
use crate::entitled::{EntitlementAnswer, EntitlementQuestion};

pub struct EntitlementService {
    state: AccessState,
}

impl EntitlementService {
    pub fn new(state: AccessState) -> Self {
        Self { state }
    }
}

fn reservation(reservation: &CreditReservation) -> Reservation {
    Reservation {
        id: reservation.id.to_string(),
        wallet: reservation.key.wallet().to_owned(),
        network: reservation.key.network().to_owned(),
        asset: reservation.key.asset().to_owned(),
        amount: reservation.amount.to_string(),
        state: reservation.state.as_str().to_owned(),
        committed_amount: reservation
            .committed_amount
            .map(|a| a.to_string())
            .unwrap_or_default(),
    }
}

fn non_empty(value: &str) -> Option<&str> {
    Some(value).filter(|v| !v.is_empty())
}

#[tonic::async_trait]
impl entitlement_v1::entitlement_service_server::EntitlementService for EntitlementService {
    async fn check(
        &self,
        request: Request<entitlement_v1::CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let scope = caller(&self.state, request.metadata()).await?;
        let request = request.into_inner();
        if request.resource.is_empty() && request.url.is_empty() {
            return Err(status_of(Error::invalid_input(
                "name the resource, or its method and url",
            )));
        }
        let (session, sign_in) = match &request.proof {
            Some(check_request::Proof::Session(token)) => (Some(token.as_str()), None),
            Some(check_request::Proof::SignIn(header)) => (None, Some(header.as_str())),
            None => (None, None),
        };
        let reserve = non_empty(&request.reserve)
            .map(Amount::parse_atomic)
            .transpose()
            .map_err(status_of)?;
        let question = EntitlementQuestion {
            resource: non_empty(&request.resource),
            method: non_empty(&request.method).unwrap_or("GET"),
            url: &request.url,
            session,
            sign_in,
            reserve,
            network: non_empty(&request.network),
        };
        let answer = self
            .state
            .entitlement(scope, &question)
            .await
            .map_err(status_of)?;
        let decision = match answer {
            EntitlementAnswer::Grant {
                wallet,
                grant,
                session,
            } => check_response::Decision::Allow(Allow {
                wallet,
                by: Some(allow::By::Grant(Grant {
                    id: grant.id.to_string(),
                    expires_at: grant
                        .expires_at
                        .map(|at| at.to_rfc3339())
                        .unwrap_or_default(),
                    uses_left: grant
                        .uses_allowed
                        .map(|n| n.saturating_sub(grant.uses_count)),
                })),
                session: session.unwrap_or_default(),
            }),
            EntitlementAnswer::Credit {
                wallet,
                reservation: held,
                session,
            } => check_response::Decision::Allow(Allow {
                wallet,
                by: Some(allow::By::Reservation(reservation(&held))),
                session: session.unwrap_or_default(),
            }),
            EntitlementAnswer::Deny {
                reason,
                message,
                reply,
            } => check_response::Decision::Deny(Deny {
                reason: reason.as_str().to_owned(),
                message,
                answer: Some(http_answer(reply)),
            }),
        };
        Ok(Response::new(CheckResponse {
            decision: Some(decision),
        }))
    }

    async fn commit_reservation(
        &self,
        request: Request<entitlement_v1::CommitReservationRequest>,
    ) -> Result<Response<Reservation>, Status> {
        let scope = caller(&self.state, request.metadata()).await?;
        let request = request.into_inner();
        let id: CreditReservationId = request.id.parse().map_err(status_of)?;
        let actual = Amount::parse_atomic(&request.amount).map_err(status_of)?;
        let committed = self
            .state
            .gateway
            .repositories()
            .credits
            .commit(scope, id, actual)
            .await
            .map_err(status_of)?;
        Ok(Response::new(reservation(&committed)))
    }

    async fn release_reservation(
        &self,
        request: Request<entitlement_v1::ReleaseReservationRequest>,
    ) -> Result<Response<Reservation>, Status> {
        let scope = caller(&self.state, request.metadata()).await?;
        let id: CreditReservationId = request.get_ref().id.parse().map_err(status_of)?;
        let released = self
            .state
            .gateway
            .repositories()
            .credits
            .release(scope, id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(reservation(&released)))
    }
}
