-- no-transaction
-- Escrowed payments (`auth-capture`): each operation on a payment the escrow holds (authorize
-- or charge, capture, void, refund) is a settlement of its own kind, with the escrow's key for the payment
-- (`getHash(paymentInfo)`) and the fee it pays out. The ledger gains the escrow's accounts and
-- codes (see `purser_domain::ledger`); its tables are rebuilt for their CHECK constraints as in
-- 0014.
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

CREATE TABLE ledger_accounts_0015 (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    network    TEXT    NOT NULL,
    asset      TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN
                   ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees',
                    'credit_issuance', 'payer_credit', 'credit_earned', 'network_fees', 'signer_gas',
                    'escrow_held', 'payer_returned', 'refund_advances')),
    created_at INTEGER NOT NULL,
    -- Accounts of kind `payer_credit` belong to one wallet; every other kind to the whole tenant.
    wallet     TEXT    CHECK (length(wallet) = 42 AND wallet GLOB '0x*' AND substr(wallet, 3) NOT GLOB '*[^0-9a-f]*'),
    CHECK ((kind = 'payer_credit') = (wallet IS NOT NULL)),
    UNIQUE (id, tenant_id, network, asset),
    UNIQUE (id, tenant_id, network, asset, wallet)
) STRICT;

-- One account per kind and tenant, chain and asset, and per wallet for per-wallet kinds (SQLite
-- counts NULLs as distinct in a UNIQUE constraint, hence two partial indexes).
CREATE UNIQUE INDEX ledger_accounts_tenant_key_0015 ON ledger_accounts_0015 (tenant_id, network, asset, kind)
    WHERE wallet IS NULL;
CREATE UNIQUE INDEX ledger_accounts_wallet_key_0015 ON ledger_accounts_0015 (tenant_id, network, asset, kind, wallet)
    WHERE wallet IS NOT NULL;

CREATE TABLE ledger_transfers_0015 (
    id                BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id         BLOB    NOT NULL,
    network           TEXT    NOT NULL,
    asset             TEXT    NOT NULL,
    debit_account_id  BLOB    NOT NULL,
    credit_account_id BLOB    NOT NULL,
    amount            TEXT    NOT NULL CHECK (amount NOT GLOB '*[^0-9]*' AND length(amount) BETWEEN 1 AND 39 AND amount NOT GLOB '0*'),
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    code              TEXT    NOT NULL CHECK (code IN ('settlement', 'payout', 'credit_top_up', 'credit_use', 'network_fee',
                                      'escrow_fee', 'escrow_reclaim')),
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

INSERT INTO ledger_accounts_0015 (id, tenant_id, network, asset, kind, created_at, wallet)
    SELECT id, tenant_id, network, asset, kind, created_at, wallet FROM ledger_accounts;
INSERT INTO ledger_transfers_0015 (id, tenant_id, network, asset, debit_account_id,
        credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
    SELECT id, tenant_id, network, asset, debit_account_id, credit_account_id,
        amount, state, code, settlement_id, created_at, resolved_at FROM ledger_transfers;
DROP TABLE ledger_transfers;
DROP TABLE ledger_accounts;
ALTER TABLE ledger_accounts_0015 RENAME TO ledger_accounts;
ALTER TABLE ledger_transfers_0015 RENAME TO ledger_transfers;
DROP INDEX ledger_accounts_tenant_key_0015;
DROP INDEX ledger_accounts_wallet_key_0015;
CREATE UNIQUE INDEX ledger_accounts_tenant_key ON ledger_accounts (tenant_id, network, asset, kind)
    WHERE wallet IS NULL;
CREATE UNIQUE INDEX ledger_accounts_wallet_key ON ledger_accounts (tenant_id, network, asset, kind, wallet)
    WHERE wallet IS NOT NULL;

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

ALTER TABLE settlements ADD COLUMN kind TEXT NOT NULL DEFAULT 'exact' CHECK (kind IN
    ('exact', 'escrow_authorize', 'escrow_charge', 'escrow_capture', 'escrow_void',
         'escrow_refund'));
ALTER TABLE settlements ADD COLUMN escrow_payment TEXT
    CHECK (length(escrow_payment) = 66 AND escrow_payment GLOB '0x*' AND substr(escrow_payment, 3) NOT GLOB '*[^0-9a-f]*');
ALTER TABLE settlements ADD COLUMN escrow_fee TEXT
    CHECK (escrow_fee NOT GLOB '*[^0-9]*' AND length(escrow_fee) BETWEEN 1 AND 39);

-- An escrow operation names its payment and fee; an `exact` settlement neither (SQLite adds no
-- table CHECK to an existing table).
CREATE TRIGGER settlements_escrow_whole_insert BEFORE INSERT ON settlements
WHEN (NEW.kind = 'exact') <> (NEW.escrow_payment IS NULL)
  OR (NEW.escrow_payment IS NULL) <> (NEW.escrow_fee IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'an escrow operation names its payment and fee, and only it');
END;
CREATE TRIGGER settlements_escrow_whole_update BEFORE UPDATE OF kind, escrow_payment, escrow_fee ON settlements
WHEN (NEW.kind = 'exact') <> (NEW.escrow_payment IS NULL)
  OR (NEW.escrow_payment IS NULL) <> (NEW.escrow_fee IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'an escrow operation names its payment and fee, and only it');
END;

-- One operation in flight per escrowed payment: each is checked against the escrow's balances
-- as the one before it left them, so a second may not start until the first is final.
CREATE UNIQUE INDEX settlements_escrow_in_flight_key ON settlements (escrow_payment)
    WHERE escrow_payment IS NOT NULL AND status IN ('received', 'verified', 'submitted', 'pending');
-- A payment's operations, in order.
CREATE INDEX settlements_escrow_payment_idx ON settlements (escrow_payment, created_at)
    WHERE escrow_payment IS NOT NULL;

PRAGMA foreign_key_check;

COMMIT;

PRAGMA foreign_keys = ON;
