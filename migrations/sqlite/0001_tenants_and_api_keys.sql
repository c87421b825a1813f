-- Tenants and the API keys that act for them (or, with no tenant, for the platform).
-- Ids are 16-byte UUID blobs; timestamps are integer microseconds since the Unix epoch, UTC.

CREATE TABLE tenants (
    id              BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- Lower-cased name: uniqueness ignores case.
    name_normalized TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL CHECK (kind IN ('merchant', 'business_unit')),
    status          TEXT    NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id    BLOB    REFERENCES tenants (id),
    role         TEXT    NOT NULL
                 CHECK (role IN ('operator', 'tenant_admin', 'tenant_read', 'resource_server')),
    name         TEXT    NOT NULL CHECK (length(name) <= 100),
    -- The public part of the token, shown in listings and used to find the key.
    prefix       TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the whole token, hex. The token itself is never stored.
    secret_hash  TEXT    NOT NULL CHECK (length(secret_hash) = 64),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    CHECK ((role = 'operator') = (tenant_id IS NULL))
) STRICT;

CREATE INDEX api_keys_tenant_id_id_idx ON api_keys (tenant_id, id);
