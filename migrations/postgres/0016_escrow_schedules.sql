-- Holds Purser finishes itself (x402 `auth-capture` through the gateway): by the resource's
-- policy, capture or void once due, never later than the capture deadline less a margin.
-- Times of the chain (`due_at`, `capture_deadline`) are unix seconds, as the escrow keeps them.
CREATE TABLE escrow_schedules (
    payment          text        PRIMARY KEY CHECK (payment ~ '^0x[0-9a-f]{64}$'),
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    network          text        NOT NULL,
    action           text        NOT NULL CHECK (action IN ('capture', 'void')),
    due_at           bigint      NOT NULL,
    capture_deadline bigint      NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text,
    resolved_at      timestamptz,
    outcome          text,
    created_at       timestamptz NOT NULL,
    CHECK ((resolved_at IS NULL) = (outcome IS NULL))
);

-- The schedule's work list: unresolved holds of a chain by when they come due.
CREATE INDEX escrow_schedules_due_idx ON escrow_schedules (network, due_at)
    WHERE resolved_at IS NULL;
