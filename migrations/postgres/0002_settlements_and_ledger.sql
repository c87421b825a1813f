-- Settlements (one per payment authorization), the transactions sent for them, signer nonce
-- leases, payment identifiers, and the double-entry ledger.

CREATE TABLE settlements (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (id),
    network            text        NOT NULL,
    asset              text        NOT NULL CHECK (asset ~ '^0x[0-9a-f]{40}$'),
    payer              text        NOT NULL CHECK (payer ~ '^0x[0-9a-f]{40}$'),
    auth_nonce         text        NOT NULL CHECK (auth_nonce ~ '^0x[0-9a-f]{64}$'),
    pay_to             text        NOT NULL,
    amount             numeric(39, 0) NOT NULL CHECK (amount >= 0),
    valid_after        bigint      NOT NULL CHECK (valid_after >= 0),
    valid_before       bigint      NOT NULL CHECK (valid_before >= 0),
    -- The x402 payment payload and requirements, as received (JSON text, byte for byte).
    payload            text        NOT NULL,
    requirements       text        NOT NULL,
    status             text        NOT NULL CHECK (status IN
                           ('received', 'verified', 'submitted', 'pending', 'confirmed', 'failed', 'rejected')),
    error_reason       text,
    error_message      text,
    tx_hash            text,
    block_number       bigint,
    payment_identifier text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    -- An EIP-3009 authorization executes at most once on chain: it is settled at most once here.
    CONSTRAINT settlements_authorization_key UNIQUE (network, asset, payer, auth_nonce),
    CONSTRAINT settlements_confirmed_have_a_block
        CHECK (status <> 'confirmed' OR (tx_hash IS NOT NULL AND block_number IS NOT NULL)),
    CONSTRAINT settlements_in_flight_have_a_transaction
        CHECK (status NOT IN ('submitted', 'pending') OR tx_hash IS NOT NULL)
);

CREATE INDEX settlements_tenant_id_id_idx ON settlements (tenant_id, id);
CREATE INDEX settlements_unfinished_idx ON settlements (updated_at)
    WHERE status IN ('received', 'verified', 'submitted', 'pending');

-- Every signed transaction, written before it is broadcast, so a crash can resend it verbatim.
CREATE TABLE settlement_attempts (
    id                       uuid PRIMARY KEY,
    settlement_id            uuid REFERENCES settlements (id),
    kind                     text        NOT NULL CHECK (kind IN ('transfer', 'deploy', 'gap_fill')),
    network                  text        NOT NULL,
    signer                   text        NOT NULL CHECK (signer ~ '^0x[0-9a-f]{40}$'),
    signer_nonce             bigint      NOT NULL CHECK (signer_nonce >= 0),
    tx_hash                  text        NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    raw_tx                   bytea       NOT NULL,
    max_fee_per_gas          numeric(39, 0) NOT NULL,
    max_priority_fee_per_gas numeric(39, 0) NOT NULL,
    created_at               timestamptz NOT NULL,
    broadcast_at             timestamptz,
    CONSTRAINT settlement_attempts_tx_hash_key UNIQUE (network, tx_hash),
    -- Transfers and wallet deployments serve a settlement; gap fillers serve none.
    CONSTRAINT settlement_attempts_gap_fill_has_no_settlement
        CHECK ((kind = 'gap_fill') = (settlement_id IS NULL))
);

CREATE INDEX settlement_attempts_signer_nonce_idx ON settlement_attempts (network, signer, signer_nonce);
CREATE INDEX settlement_attempts_settlement_id_idx ON settlement_attempts (settlement_id);

-- The next nonce each signer will use, leased atomically so instances sharing a signer never
-- collide.
CREATE TABLE signer_nonces (
    network    text        NOT NULL,
    signer     text        NOT NULL,
    next_nonce bigint      NOT NULL CHECK (next_nonce >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (network, signer)
);

CREATE TABLE payment_identifiers (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    identifier   text        NOT NULL CHECK (char_length(identifier) BETWEEN 16 AND 128),
    payload_hash text        NOT NULL CHECK (payload_hash ~ '^[0-9a-f]{64}$'),
    response     text,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, identifier)
);

CREATE TABLE ledger_accounts (
    id         uuid PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    network    text        NOT NULL,
    asset      text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN
                   ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees')),
    created_at timestamptz NOT NULL,
    CONSTRAINT ledger_accounts_key UNIQUE (tenant_id, network, asset, kind),
    -- The target of the transfers' foreign keys: both sides of a transfer share its tenant,
    -- chain and asset.
    CONSTRAINT ledger_accounts_scope_key UNIQUE (id, tenant_id, network, asset)
);

-- One debit, one credit, one amount: every transfer balances by its shape.
CREATE TABLE ledger_transfers (
    id                uuid PRIMARY KEY,
    tenant_id         uuid        NOT NULL,
    network           text        NOT NULL,
    asset             text        NOT NULL,
    debit_account_id  uuid        NOT NULL,
    credit_account_id uuid        NOT NULL,
    amount            numeric(39, 0) NOT NULL CHECK (amount > 0),
    state             text        NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    code              text        NOT NULL CHECK (code IN ('settlement', 'payout')),
    settlement_id     uuid REFERENCES settlements (id),
    created_at        timestamptz NOT NULL,
    resolved_at       timestamptz,
    CONSTRAINT ledger_transfers_two_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT ledger_transfers_resolved_when_not_pending CHECK ((state = 'pending') = (resolved_at IS NULL)),
    CONSTRAINT ledger_transfers_debit_fkey FOREIGN KEY (debit_account_id, tenant_id, network, asset)
        REFERENCES ledger_accounts (id, tenant_id, network, asset),
    CONSTRAINT ledger_transfers_credit_fkey FOREIGN KEY (credit_account_id, tenant_id, network, asset)
        REFERENCES ledger_accounts (id, tenant_id, network, asset),
    CONSTRAINT ledger_transfers_settlement_code_key UNIQUE (settlement_id, code)
);

CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account_id);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account_id);

-- Transfers are append-only: a pending transfer may be posted or voided once; nothing else about
-- any transfer ever changes, and none is deleted.
CREATE FUNCTION ledger_transfers_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ledger transfers are never deleted' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'transfer % is already %', OLD.id, OLD.state USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id OR NEW.network <> OLD.network
       OR NEW.asset <> OLD.asset OR NEW.debit_account_id <> OLD.debit_account_id
       OR NEW.credit_account_id <> OLD.credit_account_id OR NEW.amount <> OLD.amount
       OR NEW.code <> OLD.code OR NEW.settlement_id IS DISTINCT FROM OLD.settlement_id
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'only a pending transfer''s state changes' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ledger_transfers_resolve_once
    BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_resolve_once();
