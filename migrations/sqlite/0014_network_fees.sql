-- no-transaction
-- Every wei of gas accounted for: a mined settlement transaction's cost, from its receipt, is
-- kept on the settlement and posted to the ledger as a `network_fee` transfer from the tenant's
-- `signer_gas` account to its `network_fees` account, in the chain's gas token (asset
-- `native`). The settlement also keeps the router's estimate when it was signed, and why its
-- rail (the quotes of every rail, as JSON).
--
-- SQLite cannot change a CHECK constraint in place, and the ledger tables now have children
-- (credit balances and reservations) whose foreign keys name them: they are rebuilt the way
-- SQLite's documentation prescribes, with foreign keys off, in one transaction of this
-- migration's own (hence `no-transaction` above), new tables created, filled, the old dropped
-- and the new renamed, and `foreign_key_check` run before committing.
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

CREATE TABLE ledger_accounts_0014 (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    network    TEXT    NOT NULL,
    asset      TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN
                   ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees',
                    'credit_issuance', 'payer_credit', 'credit_earned', 'network_fees', 'signer_gas')),
    created_at INTEGER NOT NULL,
    -- Accounts of kind `payer_credit` belong to one wallet; every other kind to the whole tenant.
    wallet     TEXT    CHECK (length(wallet) = 42 AND wallet GLOB '0x*' AND substr(wallet, 3) NOT GLOB '*[^0-9a-f]*'),
    CHECK ((kind = 'payer_credit') = (wallet IS NOT NULL)),
    UNIQUE (id, tenant_id, network, asset),
    UNIQUE (id, tenant_id, network, asset, wallet)
) STRICT;

-- One account per kind and tenant, chain and asset, and per wallet for per-wallet kinds (SQLite
-- counts NULLs as distinct in a UNIQUE constraint, hence two partial indexes).
CREATE UNIQUE INDEX ledger_accounts_tenant_key_0014 ON ledger_accounts_0014 (tenant_id, network, asset, kind)
    WHERE wallet IS NULL;
CREATE UNIQUE INDEX ledger_accounts_wallet_key_0014 ON ledger_accounts_0014 (tenant_id, network, asset, kind, wallet)
    WHERE wallet IS NOT NULL;

CREATE TABLE ledger_transfers_0014 (
    id                BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id         BLOB    NOT NULL,
    network           TEXT    NOT NULL,
    asset             TEXT    NOT NULL,
    debit_account_id  BLOB    NOT NULL,
    credit_account_id BLOB    NOT NULL,
    amount            TEXT    NOT NULL CHECK (amount NOT GLOB '*[^0-9]*' AND length(amount) BETWEEN 1 AND 39 AND amount NOT GLOB '0*'),
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    code              TEXT    NOT NULL CHECK (code IN ('settlement', 'payout', 'credit_top_up', 'credit_use', 'network_fee')),
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

INSERT INTO ledger_accounts_0014 (id, tenant_id, network, asset, kind, created_at, wallet)
    SELECT id, tenant_id, network, asset, kind, created_at, wallet FROM ledger_accounts;
INSERT INTO ledger_transfers_0014 (id, tenant_id, network, asset, debit_account_id,
        credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
    SELECT id, tenant_id, network, asset, debit_account_id, credit_account_id,
        amount, state, code, settlement_id, created_at, resolved_at FROM ledger_transfers;
DROP TABLE ledger_transfers;
DROP TABLE ledger_accounts;
ALTER TABLE ledger_accounts_0014 RENAME TO ledger_accounts;
ALTER TABLE ledger_transfers_0014 RENAME TO ledger_transfers;
DROP INDEX ledger_accounts_tenant_key_0014;
DROP INDEX ledger_accounts_wallet_key_0014;
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

ALTER TABLE settlements ADD COLUMN gas_used INTEGER CHECK (gas_used >= 0);
ALTER TABLE settlements ADD COLUMN effective_gas_price TEXT CHECK (effective_gas_price NOT GLOB '*[^0-9]*' AND length(effective_gas_price) BETWEEN 1 AND 39);
ALTER TABLE settlements ADD COLUMN l1_fee TEXT CHECK (l1_fee NOT GLOB '*[^0-9]*' AND length(l1_fee) BETWEEN 1 AND 39);
ALTER TABLE settlements ADD COLUMN operator_fee TEXT CHECK (operator_fee NOT GLOB '*[^0-9]*' AND length(operator_fee) BETWEEN 1 AND 39);
ALTER TABLE settlements ADD COLUMN network_cost TEXT CHECK (network_cost NOT GLOB '*[^0-9]*' AND length(network_cost) BETWEEN 1 AND 39);
ALTER TABLE settlements ADD COLUMN estimated_network_cost TEXT CHECK (estimated_network_cost NOT GLOB '*[^0-9]*' AND length(estimated_network_cost) BETWEEN 1 AND 39);
ALTER TABLE settlements ADD COLUMN route_decision TEXT;

-- A cost is recorded whole or not at all (SQLite adds no table CHECK to an existing table).
CREATE TRIGGER settlements_network_cost_whole BEFORE UPDATE OF gas_used, effective_gas_price, l1_fee, operator_fee, network_cost ON settlements
WHEN (NEW.gas_used IS NULL) <> (NEW.network_cost IS NULL)
  OR (NEW.gas_used IS NULL) <> (NEW.effective_gas_price IS NULL)
  OR (NEW.gas_used IS NULL) <> (NEW.l1_fee IS NULL)
  OR (NEW.gas_used IS NULL) <> (NEW.operator_fee IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'a network cost is recorded whole or not at all');
END;

-- A tenant's settlement gas per day and chain reads the settlements whose cost is known, by
-- when their outcome was recorded.
CREATE INDEX settlements_network_cost_idx ON settlements (tenant_id, updated_at)
    WHERE network_cost IS NOT NULL;

PRAGMA foreign_key_check;

COMMIT;

PRAGMA foreign_keys = ON;
