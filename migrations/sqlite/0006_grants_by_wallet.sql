-- A wallet's grants with a tenant, in id order: what the entitlement cache reads when it
-- (re)loads a wallet (`list_grants` filtered by wallet). The partial indexes of 0004 serve the
-- per-use lookups by resource or group but not this listing, which otherwise filtered every
-- grant of the tenant (linear in what a merchant has sold; see BENCHMARKS.md, "Entitlement
-- checks").
CREATE INDEX grants_by_wallet ON grants (tenant_id, wallet, id);
