-- Tenants and the API keys that act for them (or, with no tenant, for the platform).

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Lower-cased name: uniqueness ignores case.
    name_normalized text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('merchant', 'business_unit')),
    status          text        NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT tenants_name_normalized_key UNIQUE (name_normalized)
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid        REFERENCES tenants (id),
    role         text        NOT NULL
                 CHECK (role IN ('operator', 'tenant_admin', 'tenant_read', 'resource_server')),
    name         text        NOT NULL CHECK (char_length(name) <= 100),
    -- The public part of the token, shown in listings and used to find the key.
    prefix       text        NOT NULL,
    -- SHA-256 of the whole token, hex. The token itself is never stored.
    secret_hash  text        NOT NULL CHECK (char_length(secret_hash) = 64),
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT api_keys_operator_iff_no_tenant CHECK ((role = 'operator') = (tenant_id IS NULL))
);

CREATE INDEX api_keys_tenant_id_id_idx ON api_keys (tenant_id, id);
