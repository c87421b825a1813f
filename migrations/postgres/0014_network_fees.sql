-- Every wei of gas accounted for: a mined settlement transaction's cost, from its receipt, is
-- kept on the settlement and posted to the ledger as a `network_fee` transfer from the tenant's
-- `signer_gas` account to its `network_fees` account, in the chain's gas token (asset
-- `native`). The settlement also keeps the router's estimate when it was signed, and why its
-- rail (the quotes of every rail, as JSON).
ALTER TABLE ledger_accounts
    DROP CONSTRAINT ledger_accounts_kind_check,
    ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN
        ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees',
         'credit_issuance', 'payer_credit', 'credit_earned', 'network_fees', 'signer_gas'));

ALTER TABLE ledger_transfers
    DROP CONSTRAINT ledger_transfers_code_check,
    ADD CONSTRAINT ledger_transfers_code_check
        CHECK (code IN ('settlement', 'payout', 'credit_top_up', 'credit_use', 'network_fee'));

ALTER TABLE settlements
    ADD COLUMN gas_used bigint CHECK (gas_used >= 0),
    ADD COLUMN effective_gas_price numeric(39, 0) CHECK (effective_gas_price >= 0),
    ADD COLUMN l1_fee numeric(39, 0) CHECK (l1_fee >= 0),
    ADD COLUMN operator_fee numeric(39, 0) CHECK (operator_fee >= 0),
    ADD COLUMN network_cost numeric(39, 0) CHECK (network_cost >= 0),
    ADD COLUMN estimated_network_cost numeric(39, 0) CHECK (estimated_network_cost >= 0),
    ADD COLUMN route_decision text,
    -- A cost is recorded whole or not at all.
    ADD CONSTRAINT settlements_network_cost_whole CHECK (
        (gas_used IS NULL) = (network_cost IS NULL)
        AND (gas_used IS NULL) = (effective_gas_price IS NULL)
        AND (gas_used IS NULL) = (l1_fee IS NULL)
        AND (gas_used IS NULL) = (operator_fee IS NULL));

-- A tenant's settlement gas per day and chain reads the settlements whose cost is known, by when
-- their outcome was recorded.
CREATE INDEX settlements_network_cost_idx ON settlements (tenant_id, updated_at)
    WHERE network_cost IS NOT NULL;
