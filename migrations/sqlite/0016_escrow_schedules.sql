-- Holds Purser finishes itself (x402 `auth-capture` through the gateway): by the resource's
-- policy, capture or void once due, never later than the capture deadline less a margin.
-- Times of the chain (`due_at`, `capture_deadline`) are unix seconds, as the escrow keeps them.
CREATE TABLE escrow_schedules (
    payment          TEXT    PRIMARY KEY NOT NULL CHECK (length(payment) = 66 AND payment GLOB '0x*' AND substr(payment, 3) NOT GLOB '*[^0-9a-f]*'),
    tenant_id        BLOB    NOT NULL CHECK (length(tenant_id) = 16) REFERENCES tenants (id),
    network          TEXT    NOT NULL,
    action           TEXT    NOT NULL CHECK (action IN ('capture', 'void')),
    due_at           INTEGER NOT NULL,
    capture_deadline INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       TEXT,
    resolved_at      INTEGER,
    outcome          TEXT,
    created_at       INTEGER NOT NULL,
    CHECK ((resolved_at IS NULL) = (outcome IS NULL))
) STRICT;

-- The schedule's work list: unresolved holds of a chain by when they come due.
CREATE INDEX escrow_schedules_due_idx ON escrow_schedules (network, due_at)
    WHERE resolved_at IS NULL;
