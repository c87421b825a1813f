-- The registry: payout addresses per network, resources with versioned terms, and the catalog
-- indexes (FTS5 full-text search, filters) over them. JSON is stored as TEXT.

CREATE TABLE payout_addresses (
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    network    TEXT    NOT NULL,
    -- EIP-55 checksummed.
    address    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, network)
) STRICT;

CREATE TABLE resources (
    id                BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id         BLOB    NOT NULL REFERENCES tenants (id),
    origin            TEXT    NOT NULL CHECK (origin IN ('merchant', 'bazaar')),
    kind              TEXT    NOT NULL CHECK (kind IN ('http', 'mcp')),
    url               TEXT    NOT NULL,
    method            TEXT,
    tool              TEXT,
    -- kind, method or tool, and URL: what makes two listings of a tenant the same resource.
    resource_key      TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    description       TEXT    NOT NULL,
    mime_type         TEXT,
    service_name      TEXT,
    tags              TEXT    NOT NULL DEFAULT '[]',
    icon_url          TEXT,
    status            TEXT    NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    current_version   INTEGER NOT NULL CHECK (current_version >= 1),
    health            TEXT    NOT NULL DEFAULT 'unknown'
                      CHECK (health IN ('unknown', 'healthy', 'unhealthy')),
    health_checked_at INTEGER,
    health_detail     TEXT,
    unhealthy_since   INTEGER,
    hidden            INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    -- Service name and tags, and the schemas' property names, as words for search.
    search_tags       TEXT    NOT NULL DEFAULT '',
    search_fields     TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    CHECK ((kind = 'http' AND method IS NOT NULL AND tool IS NULL)
        OR (kind = 'mcp' AND tool IS NOT NULL AND method IS NULL))
) STRICT;

-- One live listing per tenant and key; archived ones step aside.
CREATE UNIQUE INDEX resources_tenant_key ON resources (tenant_id, resource_key)
    WHERE status <> 'archived';
CREATE INDEX resources_by_tenant ON resources (tenant_id, id);
CREATE INDEX resources_catalog ON resources (updated_at DESC, id)
    WHERE status = 'published' AND hidden = 0;
CREATE INDEX resources_probe ON resources (health_checked_at, id)
    WHERE status = 'published' AND kind = 'http';

CREATE TABLE resource_versions (
    resource_id   BLOB    NOT NULL REFERENCES resources (id),
    version       INTEGER NOT NULL CHECK (version >= 1),
    -- purser_domain::registry::VersionSpec as JSON.
    spec          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    superseded_at INTEGER,
    PRIMARY KEY (resource_id, version)
) STRICT;

-- The current version's ways to pay, one row each, for the catalog's filters.
CREATE TABLE resource_accepts (
    resource_id BLOB NOT NULL REFERENCES resources (id),
    scheme      TEXT NOT NULL,
    network     TEXT NOT NULL,
    asset       TEXT NOT NULL,
    -- Lower case: filters compare addresses without their checksum.
    pay_to      TEXT NOT NULL
) STRICT;
CREATE INDEX resource_accepts_by_resource ON resource_accepts (resource_id);
CREATE INDEX resource_accepts_by_network ON resource_accepts (network, resource_id);
CREATE INDEX resource_accepts_by_pay_to ON resource_accepts (pay_to, resource_id);

-- Full-text index over the resources table (external content), kept in step by triggers.
-- Columns are weighted at query time: name, tags, description, schema fields.
CREATE VIRTUAL TABLE resources_fts USING fts5(
    name, search_tags, description, search_fields,
    content = 'resources', content_rowid = 'rowid', tokenize = 'porter unicode61'
);

CREATE TRIGGER resources_fts_insert AFTER INSERT ON resources BEGIN
    INSERT INTO resources_fts (rowid, name, search_tags, description, search_fields)
    VALUES (new.rowid, new.name, new.search_tags, new.description, new.search_fields);
END;

CREATE TRIGGER resources_fts_delete AFTER DELETE ON resources BEGIN
    INSERT INTO resources_fts (resources_fts, rowid, name, search_tags, description, search_fields)
    VALUES ('delete', old.rowid, old.name, old.search_tags, old.description, old.search_fields);
END;

CREATE TRIGGER resources_fts_update
AFTER UPDATE OF name, search_tags, description, search_fields ON resources BEGIN
    INSERT INTO resources_fts (resources_fts, rowid, name, search_tags, description, search_fields)
    VALUES ('delete', old.rowid, old.name, old.search_tags, old.description, old.search_fields);
    INSERT INTO resources_fts (rowid, name, search_tags, description, search_fields)
    VALUES (new.rowid, new.name, new.search_tags, new.description, new.search_fields);
END;
