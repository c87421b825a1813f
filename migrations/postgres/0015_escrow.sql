-- Escrowed payments (`auth-capture`): each operation on a payment the escrow holds (authorize
-- or charge, capture, void, refund) is a settlement of its own kind, with the escrow's key for the payment
-- (`getHash(paymentInfo)`) and the fee it pays out. The ledger gains the escrow's accounts and
-- codes (see `purser_domain::ledger`).
ALTER TABLE ledger_accounts
    DROP CONSTRAINT ledger_accounts_kind_check,
    ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN
        ('payer_clearing', 'settlement_in_flight', 'merchant_receivable', 'fees',
         'credit_issuance', 'payer_credit', 'credit_earned', 'network_fees', 'signer_gas',
         'escrow_held', 'payer_returned', 'refund_advances'));

ALTER TABLE ledger_transfers
    DROP CONSTRAINT ledger_transfers_code_check,
    ADD CONSTRAINT ledger_transfers_code_check
        CHECK (code IN ('settlement', 'payout', 'credit_top_up', 'credit_use', 'network_fee',
                        'escrow_fee', 'escrow_reclaim'));

ALTER TABLE settlements
    ADD COLUMN kind text NOT NULL DEFAULT 'exact' CHECK (kind IN
        ('exact', 'escrow_authorize', 'escrow_charge', 'escrow_capture', 'escrow_void',
         'escrow_refund')),
    ADD COLUMN escrow_payment text
        CHECK (escrow_payment ~ '^0x[0-9a-f]{64}$'),
    ADD COLUMN escrow_fee numeric(39, 0) CHECK (escrow_fee >= 0 AND escrow_fee <= amount),
    ADD CONSTRAINT settlements_escrow_whole CHECK (
        (kind = 'exact') = (escrow_payment IS NULL)
        AND (escrow_payment IS NULL) = (escrow_fee IS NULL));

-- One operation in flight per escrowed payment: each is checked against the escrow's balances
-- as the one before it left them, so a second may not start until the first is final.
CREATE UNIQUE INDEX settlements_escrow_in_flight_key ON settlements (escrow_payment)
    WHERE escrow_payment IS NOT NULL AND status IN ('received', 'verified', 'submitted', 'pending');
-- A payment's operations, in order.
CREATE INDEX settlements_escrow_payment_idx ON settlements (escrow_payment, created_at)
    WHERE escrow_payment IS NOT NULL;
