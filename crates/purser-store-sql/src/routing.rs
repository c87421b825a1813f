//! Tenants' settlement routing policies: one row per tenant that set one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::repo::RoutingRepository;
use purser_domain::routing::RoutingPolicy;
use purser_domain::{Error, Result};

use crate::{Cols, Dialect, Row, Sql, SqlStore};

fn read_policy<D: Dialect>(row: &Row<D>) -> Result<RoutingPolicy> {
    let r = Cols::<D>::new(row);
    let corrupt = |what: &str| Error::internal("decoding a routing policy row", what.to_owned());
    let policy = RoutingPolicy {
        strategy: r.parse("strategy", "decoding a routing policy row")?,
        cost_weight_percent: u8::try_from(r.i32("cost_weight_percent")?)
            .map_err(|_| corrupt("cost_weight_percent out of range"))?,
        max_fee_ratio_bps: r
            .opt_i64("max_fee_ratio_bps")?
            .map(|bps| u32::try_from(bps).map_err(|_| corrupt("max_fee_ratio_bps out of range")))
            .transpose()?,
    };
    policy.check().map_err(|e| corrupt(e.message()))?;
    Ok(policy)
}

#[async_trait]
impl<D: Dialect> RoutingRepository for SqlStore<D> {
    async fn routing_policy(&self, scope: TenantScope) -> Result<Option<RoutingPolicy>> {
        let sql = Sql::new(
            "SELECT strategy, cost_weight_percent, max_fee_ratio_bps
             FROM routing_policies WHERE tenant_id = $1",
        )
        .arg(scope.tenant_id().as_uuid());
        self.fetch_optional(sql, "reading a routing policy")
            .await?
            .as_ref()
            .map(read_policy::<D>)
            .transpose()
    }

    async fn set_routing_policy(
        &self,
        scope: TenantScope,
        policy: RoutingPolicy,
        at: DateTime<Utc>,
    ) -> Result<RoutingPolicy> {
        policy.check()?;
        let sql = Sql::new(
            "INSERT INTO routing_policies
                 (tenant_id, strategy, cost_weight_percent, max_fee_ratio_bps, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (tenant_id) DO UPDATE SET
                 strategy = EXCLUDED.strategy,
                 cost_weight_percent = EXCLUDED.cost_weight_percent,
                 max_fee_ratio_bps = EXCLUDED.max_fee_ratio_bps,
                 updated_at = EXCLUDED.updated_at
             RETURNING strategy, cost_weight_percent, max_fee_ratio_bps",
        )
        .arg(scope.tenant_id().as_uuid())
        .arg(policy.strategy.as_str())
        .arg(i32::from(policy.cost_weight_percent))
        .arg(policy.max_fee_ratio_bps.map(i64::from))
        .arg(at);
        read_policy::<D>(&self.fetch_one(sql, "setting a routing policy").await?)
    }
}
