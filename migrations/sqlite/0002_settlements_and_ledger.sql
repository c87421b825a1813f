-- Settlements (one per payment authorization), the transactions sent for them, signer nonce
-- leases, payment identifiers, and the double-entry ledger. Amounts are canonical decimal
-- strings (no sign, no leading zeros), summed in Rust: SQLite's integers stop at 2^63.

CREATE TABLE settlements (
    id                 BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id          BLOB    NOT NULL REFERENCES tenants (id),
    network            TEXT    NOT NULL,
    asset              TEXT    NOT NULL CHECK (length(asset) = 42 AND asset GLOB '0x*' AND substr(asset, 3) NOT GLOB '*[^0-9a-f]*'),
    payer              TEXT    NOT NULL CHECK (length(payer) = 42 AND payer GLOB '0x*' AND substr(payer, 3) NOT GLOB '*[^0-9a-f]*'),
    auth_nonce         TEXT    NOT NULL CHECK (length(auth_nonce) = 66 AND auth_nonce GLOB '0x*' AND substr(auth_nonce, 3) NOT GLOB '*[^0-9a-f]*'),
    pay_to             TEXT    NOT NULL,
    amount             TEXT    NOT NULL CHECK (amount NOT GLOB '*[^0-9]*' AND length(amount) BETWEEN 1 AND 39 AND (amount = '0' OR amount NOT GLOB '0*')),
    valid_after        INTEGER NOT NULL CHECK (valid_after >= 0),
    valid_before       INTEGER NOT NULL CHECK (valid_before >= 0),
    payload            TEXT    NOT NULL,
    requirements       TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN
                           ('received', 'verified', 'submitted', 'pending', 'confirmed', 'failed', 'rejected')),
    error_reason       TEXT,
    error_message      TEXT,
    tx_hash            TEXT,
    block_number       INTEGER,
    payment_identifier TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (network, asset, payer, auth_nonce),
    CHECK (status <> 'confirmed' OR (tx_hash IS NOT NULL AND block_number IS NOT NULL)),
    CHECK (status NOT IN ('submitted', 'pending') OR tx_hash IS NOT NULL)
) STRICT;

CREATE INDEX settlements_tenant_id_id_idx ON settlements (tenant_id, id);
CREATE INDEX settlements_unfinished_idx ON settlements (updated_at)
    WHERE status IN ('received', 'verified', 'submitted', 'pending');

CREATE TABLE settlement_attempts (
    id                       BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    settlement_id            BLOB    REFERENCES settlements (id),
    kind                     TEXT    NOT NULL CHECK (kind IN ('transfer', 'deploy', 'gap_fill')),
    network                  TEXT    NOT NULL,
    signer                   TEXT    NOT NULL CHECK (length(signer) = 42),
    signer_nonce             INTEGER NOT NULL CHECK (signer_nonce >= 0),
    tx_hash                  TEXT    NOT NULL CHECK (length(tx_hash) = 66),
    raw_tx                   BLOB    NOT NULL,
    max_fee_per_gas          TEXT    NOT NULL CHECK (max_fee_per_gas NOT GLOB '*[^0-9]*'),
    max_priority_fee_per_gas TEXT    NOT NULL CHECK (max_priority_fee_per_gas NOT GLOB '*[^0-9]*'),
    created_at               INTEGER NOT NULL,
    broadcast_at             INTEGER,
    UNIQUE (network, tx_hash),
    CHECK ((kind = 'gap_fill') = (settlement_id IS NULL))
) STRICT;

CREATE INDEX settlement_attempts_signer_nonce_idx ON settlement_attempts (network, signer, signer_nonce);
CREATE INDEX settlement_attempts_settlement_id_idx ON settlement_attempts (settlement_id);

CREATE TABLE signer_nonces (
    network    TEXT    NOT NULL,
    signer     TEXT    NOT NULL,
    next_nonce INTEGER NOT NULL CHECK (next_nonce >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (network, signer)
) STRICT;

CREATE TABLE payment_identifiers (
    tenant_id    BLOB    NOT NULL REFERENCES tenants (id),
    identifier   TEXT    NOT NULL CHECK (length(identifier) BETWEEN 16 AND 128),
    payload_hash TEXT    NOT NULL CHECK (length(payload_hash) = 64),
    response     TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, identifier)
) STRICT;

CREATE TABLE ledger_accounts (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    network    TEXT    NOT NULL,
    asset      TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN
                   ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees')),
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, network, asset, kind),
    UNIQUE (id, tenant_id, network, asset)
) STRICT;

CREATE TABLE ledger_transfers (
    id                BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id         BLOB    NOT NULL,
    network           TEXT    NOT NULL,
    asset             TEXT    NOT NULL,
    debit_account_id  BLOB    NOT NULL,
    credit_account_id BLOB    NOT NULL,
    amount            TEXT    NOT NULL CHECK (amount NOT GLOB '*[^0-9]*' AND length(amount) BETWEEN 1 AND 39 AND amount NOT GLOB '0*'),
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    code              TEXT    NOT NULL CHECK (code IN ('settlement', 'payout')),
    settlement_id     BLOB    REFERENCES settlements (id),
    created_at        INTEGER NOT NULL,
    resolved_at       INTEGER,
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((state = 'pending') = (resolved_at IS NULL)),
    FOREIGN KEY (debit_account_id, tenant_id, network, asset)
        REFERENCES ledger_accounts (id, tenant_id, network, asset),
    FOREIGN KEY (credit_account_id, tenant_id, network, asset)
        REFERENCES ledger_accounts (id, tenant_id, network, asset),
    UNIQUE (settlement_id, code)
) STRICT;

CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account_id);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account_id);

-- Transfers are append-only: a pending transfer may be posted or voided once; nothing else
-- about any transfer ever changes, and none is deleted.
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger transfers are never deleted');
END;

CREATE TRIGGER ledger_transfers_resolve_once BEFORE UPDATE ON ledger_transfers
WHEN OLD.state <> 'pending'
  OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.network IS NOT OLD.network
  OR NEW.asset IS NOT OLD.asset OR NEW.debit_account_id IS NOT OLD.debit_account_id
  OR NEW.credit_account_id IS NOT OLD.credit_account_id OR NEW.amount IS NOT OLD.amount
  OR NEW.code IS NOT OLD.code OR NEW.settlement_id IS NOT OLD.settlement_id
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'only a pending transfer''s state changes, once');
END;
