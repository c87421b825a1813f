-- Prepaid credits on the ledger: per-wallet `payer_credit` accounts, the `credit_issuance` and
-- `credit_earned` accounts of each tenant, `credit_top_up` and `credit_use` transfers, one
-- balance row per payer, and the reservations.
--
-- SQLite cannot change a CHECK or UNIQUE constraint in place, so the two ledger tables are
-- rebuilt: their rows are set aside in plain copies, the tables dropped (the transfers first, so
-- no foreign key is ever broken, even for a moment) and created anew, and the rows put back.
-- All of it runs in the migration's transaction, with foreign keys on.

CREATE TABLE ledger_accounts_0004 AS SELECT * FROM ledger_accounts;
CREATE TABLE ledger_transfers_0004 AS SELECT * FROM ledger_transfers;
DROP TABLE ledger_transfers;
DROP TABLE ledger_accounts;

CREATE TABLE ledger_accounts (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    network    TEXT    NOT NULL,
    asset      TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN
                   ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees',
                    'credit_issuance', 'payer_credit', 'credit_earned')),
    created_at INTEGER NOT NULL,
    -- Accounts of kind `payer_credit` belong to one wallet; every other kind to the whole tenant.
    wallet     TEXT    CHECK (length(wallet) = 42 AND wallet GLOB '0x*' AND substr(wallet, 3) NOT GLOB '*[^0-9a-f]*'),
    CHECK ((kind = 'payer_credit') = (wallet IS NOT NULL)),
    UNIQUE (id, tenant_id, network, asset),
    UNIQUE (id, tenant_id, network, asset, wallet)
) STRICT;

-- One account per kind and tenant, chain and asset, and per wallet for per-wallet kinds (SQLite
-- counts NULLs as distinct in a UNIQUE constraint, hence two partial indexes).
CREATE UNIQUE INDEX ledger_accounts_tenant_key ON ledger_accounts (tenant_id, network, asset, kind)
    WHERE wallet IS NULL;
CREATE UNIQUE INDEX ledger_accounts_wallet_key ON ledger_accounts (tenant_id, network, asset, kind, wallet)
    WHERE wallet IS NOT NULL;

CREATE TABLE ledger_transfers (
    id                BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id         BLOB    NOT NULL,
    network           TEXT    NOT NULL,
    asset             TEXT    NOT NULL,
    debit_account_id  BLOB    NOT NULL,
    credit_account_id BLOB    NOT NULL,
    amount            TEXT    NOT NULL CHECK (amount NOT GLOB '*[^0-9]*' AND length(amount) BETWEEN 1 AND 39 AND amount NOT GLOB '0*'),
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    code              TEXT    NOT NULL CHECK (code IN ('settlement', 'payout', 'credit_top_up', 'credit_use')),
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

INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, created_at, wallet)
    SELECT id, tenant_id, network, asset, kind, created_at, NULL FROM ledger_accounts_0004;
INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
        amount, state, code, settlement_id, created_at, resolved_at)
    SELECT id, tenant_id, network, asset, debit_account_id, credit_account_id,
        amount, state, code, settlement_id, created_at, resolved_at FROM ledger_transfers_0004;
DROP TABLE ledger_transfers_0004;
DROP TABLE ledger_accounts_0004;

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

-- A payer's credit with a tenant, kept equal to the sums over its `payer_credit` account's
-- transfers in the same write transaction as every transfer that changes them:
--   available = credits posted - debits posted - debits pending,  reserved = debits pending.
-- Amounts are canonical decimal strings (checked and summed in Rust, as u128). Writers take
-- SQLite's single write lock first (`BEGIN IMMEDIATE`), so a reservation reads and decrements
-- the balance with no other writer in between.
CREATE TABLE credit_balances (
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    wallet     TEXT    NOT NULL CHECK (length(wallet) = 42 AND wallet GLOB '0x*' AND substr(wallet, 3) NOT GLOB '*[^0-9a-f]*'),
    network    TEXT    NOT NULL,
    asset      TEXT    NOT NULL CHECK (length(asset) = 42 AND asset GLOB '0x*' AND substr(asset, 3) NOT GLOB '*[^0-9a-f]*'),
    account_id BLOB    NOT NULL,
    available  TEXT    NOT NULL CHECK (available NOT GLOB '*[^0-9]*' AND length(available) BETWEEN 1 AND 39 AND (available = '0' OR available NOT GLOB '0*')),
    reserved   TEXT    NOT NULL CHECK (reserved NOT GLOB '*[^0-9]*' AND length(reserved) BETWEEN 1 AND 39 AND (reserved = '0' OR reserved NOT GLOB '0*')),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, wallet, network, asset),
    FOREIGN KEY (account_id, tenant_id, network, asset, wallet)
        REFERENCES ledger_accounts (id, tenant_id, network, asset, wallet)
) STRICT, WITHOUT ROWID;

CREATE TABLE credit_reservations (
    id               BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id        BLOB    NOT NULL,
    wallet           TEXT    NOT NULL,
    network          TEXT    NOT NULL,
    asset            TEXT    NOT NULL,
    amount           TEXT    NOT NULL CHECK (amount NOT GLOB '*[^0-9]*' AND length(amount) BETWEEN 1 AND 39 AND amount NOT GLOB '0*'),
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'committed', 'released')),
    committed_amount TEXT    CHECK (committed_amount NOT GLOB '*[^0-9]*' AND length(committed_amount) BETWEEN 1 AND 39 AND (committed_amount = '0' OR committed_amount NOT GLOB '0*')),
    -- The pending `credit_use` transfer that holds the amount.
    hold_transfer_id BLOB    NOT NULL UNIQUE REFERENCES ledger_transfers (id),
    -- The posted `credit_use` transfer of a commit for less than the hold (and more than zero).
    use_transfer_id  BLOB    UNIQUE REFERENCES ledger_transfers (id),
    created_at       INTEGER NOT NULL,
    resolved_at      INTEGER,
    CHECK ((state = 'pending') = (resolved_at IS NULL)),
    CHECK ((state = 'committed') = (committed_amount IS NOT NULL)),
    FOREIGN KEY (tenant_id, wallet, network, asset)
        REFERENCES credit_balances (tenant_id, wallet, network, asset)
) STRICT;

CREATE INDEX credit_reservations_by_balance ON credit_reservations (tenant_id, wallet, network, asset)
    WHERE state = 'pending';

-- Reservations resolve once: only a pending one changes, and only its outcome.
CREATE TRIGGER credit_reservations_no_delete BEFORE DELETE ON credit_reservations
BEGIN
    SELECT RAISE(ABORT, 'credit reservations are never deleted');
END;

CREATE TRIGGER credit_reservations_resolve_once BEFORE UPDATE ON credit_reservations
WHEN OLD.state <> 'pending'
  OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.wallet IS NOT OLD.wallet
  OR NEW.network IS NOT OLD.network OR NEW.asset IS NOT OLD.asset OR NEW.amount IS NOT OLD.amount
  OR NEW.hold_transfer_id IS NOT OLD.hold_transfer_id OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'only a pending reservation''s outcome changes, once');
END;
