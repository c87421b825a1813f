-- Grants of repeat access: what a wallet may use again without paying again. Uses are counted
-- in the row, one guarded UPDATE per use, so a grant of N uses admits exactly N requests.

-- The targets of the grants' composite foreign keys: a grant's resource and settlement belong to
-- the grant's tenant, whatever code writes the row.
CREATE UNIQUE INDEX resources_id_tenant_key ON resources (id, tenant_id);
CREATE UNIQUE INDEX settlements_id_tenant_key ON settlements (id, tenant_id);

CREATE TABLE grants (
    id            BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id     BLOB    NOT NULL REFERENCES tenants (id),
    -- The scope: one resource, or every resource of the tenant in a group.
    resource_id   BLOB    CHECK (length(resource_id) = 16),
    group_name    TEXT    CHECK (length(group_name) BETWEEN 1 AND 64),
    -- Lower-case hex: lookups compare it as text.
    wallet        TEXT    NOT NULL CHECK (length(wallet) = 42 AND wallet GLOB '0x*' AND substr(wallet, 3) NOT GLOB '*[^0-9a-f]*'),
    -- The payment that bought the grant: one grant per settlement.
    settlement_id BLOB,
    expires_at    INTEGER,
    uses_allowed  INTEGER CHECK (uses_allowed > 0),
    uses_count    INTEGER NOT NULL DEFAULT 0 CHECK (uses_count >= 0),
    revoked_at    INTEGER,
    created_at    INTEGER NOT NULL,
    CHECK ((resource_id IS NULL) <> (group_name IS NULL)),
    CHECK (uses_allowed IS NULL OR uses_count <= uses_allowed),
    FOREIGN KEY (resource_id, tenant_id) REFERENCES resources (id, tenant_id),
    FOREIGN KEY (settlement_id, tenant_id) REFERENCES settlements (id, tenant_id)
) STRICT;

CREATE UNIQUE INDEX grants_settlement_key ON grants (settlement_id) WHERE settlement_id IS NOT NULL;
-- The access check: a wallet's grants for one resource, or for one group.
CREATE INDEX grants_by_wallet_resource ON grants (tenant_id, wallet, resource_id)
    WHERE resource_id IS NOT NULL;
CREATE INDEX grants_by_wallet_group ON grants (tenant_id, wallet, group_name)
    WHERE group_name IS NOT NULL;
-- Listings, newest first (ids are time-ordered; the index is read backwards).
CREATE INDEX grants_by_tenant ON grants (tenant_id, id);
CREATE INDEX grants_by_resource ON grants (resource_id, id) WHERE resource_id IS NOT NULL;
