-- Prepaid credits on the ledger: per-wallet `payer_credit` accounts, the `credit_issuance` and
-- `credit_earned` accounts of each tenant, `credit_top_up` and `credit_use` transfers, one
-- balance row per payer that concurrent reservations contend on, and the reservations.

-- Accounts of kind `payer_credit` belong to one wallet; every other kind to the whole tenant.
ALTER TABLE ledger_accounts
    ADD COLUMN wallet text CHECK (wallet ~ '^0x[0-9a-f]{40}$'),
    DROP CONSTRAINT ledger_accounts_kind_check,
    ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN
        ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees',
         'credit_issuance', 'payer_credit', 'credit_earned')),
    ADD CONSTRAINT ledger_accounts_wallet_when_per_wallet
        CHECK ((kind = 'payer_credit') = (wallet IS NOT NULL)),
    -- Same name, one more column: tenant-wide accounts (no wallet) stay one per kind.
    DROP CONSTRAINT ledger_accounts_key,
    ADD CONSTRAINT ledger_accounts_key UNIQUE NULLS NOT DISTINCT (tenant_id, network, asset, kind, wallet),
    -- The target of the credit balances' foreign key: a balance's account is its wallet's.
    ADD CONSTRAINT ledger_accounts_wallet_scope_key UNIQUE (id, tenant_id, network, asset, wallet);

ALTER TABLE ledger_transfers
    DROP CONSTRAINT ledger_transfers_code_check,
    ADD CONSTRAINT ledger_transfers_code_check
        CHECK (code IN ('settlement', 'payout', 'credit_top_up', 'credit_use'));

-- A payer's credit with a tenant, kept equal to the sums over its `payer_credit` account's
-- transfers in the same transaction as every transfer that changes them:
--   available = credits posted - debits posted - debits pending,  reserved = debits pending.
-- A reservation decrements `available` with one guarded UPDATE that holds this row's lock until
-- commit, so concurrent reservations queue here and none takes credit that is not there; the
-- CHECK refuses a negative balance whatever code writes the row.
CREATE TABLE credit_balances (
    tenant_id  uuid           NOT NULL REFERENCES tenants (id),
    wallet     text           NOT NULL CHECK (wallet ~ '^0x[0-9a-f]{40}$'),
    network    text           NOT NULL,
    asset      text           NOT NULL CHECK (asset ~ '^0x[0-9a-f]{40}$'),
    account_id uuid           NOT NULL,
    available  numeric(39, 0) NOT NULL CHECK (available >= 0),
    reserved   numeric(39, 0) NOT NULL CHECK (reserved >= 0),
    updated_at timestamptz    NOT NULL,
    PRIMARY KEY (tenant_id, wallet, network, asset),
    -- Amounts are u128 in Rust.
    CONSTRAINT credit_balances_within_u128
        CHECK (available + reserved <= 340282366920938463463374607431768211455),
    CONSTRAINT credit_balances_account_fkey FOREIGN KEY (account_id, tenant_id, network, asset, wallet)
        REFERENCES ledger_accounts (id, tenant_id, network, asset, wallet)
);

CREATE TABLE credit_reservations (
    id               uuid PRIMARY KEY,
    tenant_id        uuid           NOT NULL,
    wallet           text           NOT NULL,
    network          text           NOT NULL,
    asset            text           NOT NULL,
    amount           numeric(39, 0) NOT NULL CHECK (amount > 0),
    state            text           NOT NULL CHECK (state IN ('pending', 'committed', 'released')),
    committed_amount numeric(39, 0) CHECK (committed_amount >= 0 AND committed_amount <= amount),
    -- The pending `credit_use` transfer that holds the amount.
    hold_transfer_id uuid           NOT NULL UNIQUE REFERENCES ledger_transfers (id),
    -- The posted `credit_use` transfer of a commit for less than the hold (and more than zero).
    use_transfer_id  uuid           UNIQUE REFERENCES ledger_transfers (id),
    created_at       timestamptz    NOT NULL,
    resolved_at      timestamptz,
    CONSTRAINT credit_reservations_resolved_when_not_pending
        CHECK ((state = 'pending') = (resolved_at IS NULL)),
    CONSTRAINT credit_reservations_committed_amount
        CHECK ((state = 'committed') = (committed_amount IS NOT NULL)),
    CONSTRAINT credit_reservations_balance_fkey FOREIGN KEY (tenant_id, wallet, network, asset)
        REFERENCES credit_balances (tenant_id, wallet, network, asset)
);

CREATE INDEX credit_reservations_by_balance ON credit_reservations (tenant_id, wallet, network, asset)
    WHERE state = 'pending';

-- Reservations resolve once: only a pending one changes, and only its outcome.
CREATE FUNCTION credit_reservations_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credit reservations are never deleted' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'credit reservation % is already %', OLD.id, OLD.state USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id OR NEW.wallet <> OLD.wallet
       OR NEW.network <> OLD.network OR NEW.asset <> OLD.asset OR NEW.amount <> OLD.amount
       OR NEW.hold_transfer_id <> OLD.hold_transfer_id OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'only a pending reservation''s outcome changes' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER credit_reservations_resolve_once
    BEFORE UPDATE OR DELETE ON credit_reservations
    FOR EACH ROW EXECUTE FUNCTION credit_reservations_resolve_once();
