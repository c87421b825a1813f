-- The registry: payout addresses per network, resources with versioned terms, and the catalog
-- indexes (full-text search, filters) over them.

CREATE TABLE payout_addresses (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    network    text        NOT NULL,
    -- EIP-55 checksummed.
    address    text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, network)
);

CREATE TABLE resources (
    id                uuid PRIMARY KEY,
    tenant_id         uuid        NOT NULL REFERENCES tenants (id),
    origin            text        NOT NULL CHECK (origin IN ('merchant', 'bazaar')),
    kind              text        NOT NULL CHECK (kind IN ('http', 'mcp')),
    url               text        NOT NULL,
    method            text,
    tool              text,
    -- kind, method or tool, and URL: what makes two listings of a tenant the same resource.
    resource_key      text        NOT NULL,
    name              text        NOT NULL,
    description       text        NOT NULL,
    mime_type         text,
    service_name      text,
    tags              jsonb       NOT NULL DEFAULT '[]',
    icon_url          text,
    status            text        NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    current_version   integer     NOT NULL CHECK (current_version >= 1),
    health            text        NOT NULL DEFAULT 'unknown'
                      CHECK (health IN ('unknown', 'healthy', 'unhealthy')),
    health_checked_at timestamptz,
    health_detail     text,
    unhealthy_since   timestamptz,
    hidden            boolean     NOT NULL DEFAULT false,
    -- Service name and tags, and the schemas' property names, as words for search.
    search_tags       text        NOT NULL DEFAULT '',
    search_fields     text        NOT NULL DEFAULT '',
    search_vector     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A')
        || setweight(to_tsvector('english', search_tags), 'B')
        || setweight(to_tsvector('english', description), 'C')
        || setweight(to_tsvector('english', search_fields), 'D')
    ) STORED,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT resources_method_or_tool CHECK (
        (kind = 'http' AND method IS NOT NULL AND tool IS NULL)
        OR (kind = 'mcp' AND tool IS NOT NULL AND method IS NULL))
);

-- One live listing per tenant and key; archived ones step aside.
CREATE UNIQUE INDEX resources_tenant_key ON resources (tenant_id, resource_key)
    WHERE status <> 'archived';
CREATE INDEX resources_by_tenant ON resources (tenant_id, id);
CREATE INDEX resources_catalog ON resources (updated_at DESC, id)
    WHERE status = 'published' AND NOT hidden;
CREATE INDEX resources_search ON resources USING gin (search_vector)
    WHERE status = 'published' AND NOT hidden;
CREATE INDEX resources_probe ON resources (health_checked_at NULLS FIRST)
    WHERE status = 'published' AND kind = 'http';

CREATE TABLE resource_versions (
    resource_id   uuid        NOT NULL REFERENCES resources (id),
    version       integer     NOT NULL CHECK (version >= 1),
    -- purser_domain::registry::VersionSpec as JSON.
    spec          jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    superseded_at timestamptz,
    PRIMARY KEY (resource_id, version)
);

-- The current version's ways to pay, one row each, for the catalog's filters.
CREATE TABLE resource_accepts (
    resource_id uuid NOT NULL REFERENCES resources (id),
    scheme      text NOT NULL,
    network     text NOT NULL,
    asset       text NOT NULL,
    -- Lower case: filters compare addresses without their checksum.
    pay_to      text NOT NULL
);
CREATE INDEX resource_accepts_by_resource ON resource_accepts (resource_id);
CREATE INDEX resource_accepts_by_network ON resource_accepts (network, resource_id);
CREATE INDEX resource_accepts_by_pay_to ON resource_accepts (pay_to, resource_id);
