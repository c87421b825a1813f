-- Grants of repeat access: what a wallet may use again without paying again. Uses are counted
-- in the row, one guarded UPDATE per use, so a grant of N uses admits exactly N requests.

-- The targets of the grants' composite foreign keys: a grant's resource and settlement belong to
-- the grant's tenant, whatever code writes the row.
ALTER TABLE resources ADD CONSTRAINT resources_id_tenant_key UNIQUE (id, tenant_id);
ALTER TABLE settlements ADD CONSTRAINT settlements_id_tenant_key UNIQUE (id, tenant_id);

CREATE TABLE grants (
    id            uuid PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    -- The scope: one resource, or every resource of the tenant in a group.
    resource_id   uuid,
    group_name    text CHECK (char_length(group_name) BETWEEN 1 AND 64),
    -- Lower-case hex: lookups compare it as text.
    wallet        text        NOT NULL CHECK (wallet ~ '^0x[0-9a-f]{40}$'),
    -- The payment that bought the grant: one grant per settlement.
    settlement_id uuid,
    expires_at    timestamptz,
    uses_allowed  bigint CHECK (uses_allowed > 0),
    uses_count    bigint      NOT NULL DEFAULT 0 CHECK (uses_count >= 0),
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL,
    CONSTRAINT grants_resource_or_group CHECK ((resource_id IS NULL) <> (group_name IS NULL)),
    CONSTRAINT grants_uses_within_allowance CHECK (uses_allowed IS NULL OR uses_count <= uses_allowed),
    CONSTRAINT grants_resource_fkey FOREIGN KEY (resource_id, tenant_id)
        REFERENCES resources (id, tenant_id),
    CONSTRAINT grants_settlement_fkey FOREIGN KEY (settlement_id, tenant_id)
        REFERENCES settlements (id, tenant_id)
);

CREATE UNIQUE INDEX grants_settlement_key ON grants (settlement_id) WHERE settlement_id IS NOT NULL;
-- The access check: a wallet's grants for one resource, or for one group.
CREATE INDEX grants_by_wallet_resource ON grants (tenant_id, wallet, resource_id)
    WHERE resource_id IS NOT NULL;
CREATE INDEX grants_by_wallet_group ON grants (tenant_id, wallet, group_name)
    WHERE group_name IS NOT NULL;
-- Listings, newest first (ids are time-ordered; the index is read backwards).
CREATE INDEX grants_by_tenant ON grants (tenant_id, id);
CREATE INDEX grants_by_resource ON grants (resource_id, id) WHERE resource_id IS NOT NULL;
