-- Settlement routing: how each tenant wants the ways to pay of its 402s ordered and filtered.
-- A tenant without a row has the default policy (cheapest first, no fee guard).
CREATE TABLE routing_policies (
    tenant_id           uuid        PRIMARY KEY REFERENCES tenants (id),
    strategy            text        NOT NULL CHECK (strategy IN ('cheapest', 'fastest', 'pinned', 'weighted')),
    -- For `weighted`: the share of the score that is cost, the rest being time.
    cost_weight_percent integer     NOT NULL CHECK (cost_weight_percent BETWEEN 0 AND 100),
    -- A rail whose settlement costs more than this share of the price (basis points) is not
    -- offered; NULL: no guard.
    max_fee_ratio_bps   bigint      CHECK (max_fee_ratio_bps BETWEEN 1 AND 10000),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
