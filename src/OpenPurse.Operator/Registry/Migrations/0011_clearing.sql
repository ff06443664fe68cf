-- Clearing (docs/operations.md, "Clearing"; docs/reliability.md, "Clearing"): what the operator owes
-- each store is paid out by clearing runs. A run clears, per store, every completed settlement and
-- every refund before its end that no run cleared yet: store → fees (the operator's fee) and
-- store → storepayouts (the payout owed to the store's bank account until it is marked paid).

-- A store's clearing terms: its fee (basis points of each sale and/or fixed minor units per sale,
-- never more than the sale) and the bank account its payouts go to (the IBAN in electronic form,
-- checked, shown masked but in the bank's export, as the cash-outs keep theirs).
CREATE TABLE store_clearing (
    store_id          TEXT PRIMARY KEY REFERENCES stores (store_id),
    fee_basis_points  {int64} NOT NULL DEFAULT 0 CHECK (fee_basis_points BETWEEN 0 AND 10000),
    fee_fixed_minor   {int64} NOT NULL DEFAULT 0 CHECK (fee_fixed_minor >= 0),
    iban              TEXT NULL,
    account_holder    TEXT NULL,
    updated_at        TEXT NOT NULL
);

-- A clearing run, by the end of what it clears (a UTC day, exclusive): one run per end, so a run
-- asked again answers the same run. Its stores are cleared one transaction each; completed_at is
-- set once every store was, and a run asked again before then goes on where it stopped.
CREATE TABLE clearing_runs (
    run_id        TEXT PRIMARY KEY,
    period_end    TEXT NOT NULL UNIQUE,            -- yyyy-MM-dd: cleared is what completed before its 00:00 UTC
    created_at    TEXT NOT NULL,
    completed_at  TEXT NULL
);

-- What one run cleared for one store in one currency, and the payout it owes the store's bank
-- account: sales − refunds − fee. Its journal entries carry its id. A net below zero is owed by
-- the store (storepayouts → store); its payment comes in instead of going out.
CREATE TABLE store_payouts (
    payout_id     TEXT PRIMARY KEY,                -- also the reference of its journal entries
    run_id        TEXT NOT NULL REFERENCES clearing_runs (run_id),
    store_id      TEXT NOT NULL REFERENCES stores (store_id),
    currency      TEXT NOT NULL,
    sales_minor   {int64} NOT NULL CHECK (sales_minor >= 0),
    refunds_minor {int64} NOT NULL CHECK (refunds_minor >= 0),
    fee_minor     {int64} NOT NULL CHECK (fee_minor >= 0 AND fee_minor <= sales_minor),
    net_minor     {int64} NOT NULL CHECK (net_minor = sales_minor - refunds_minor - fee_minor),
    sales_count   {int64} NOT NULL,
    refunds_count {int64} NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('due', 'paid', 'nothing_due')),
    created_at    TEXT NOT NULL,
    paid_at       TEXT NULL,
    UNIQUE (run_id, store_id, currency)
);
CREATE INDEX store_payouts_due ON store_payouts (created_at) WHERE state = 'due';

-- Each settlement and each refund is cleared at most once: its id is the key.
CREATE TABLE cleared_items (
    item_id       TEXT PRIMARY KEY,                -- the settlement's or the refund's id
    kind          TEXT NOT NULL CHECK (kind IN ('sale', 'refund')),
    payout_id     TEXT NOT NULL REFERENCES store_payouts (payout_id),
    amount_minor  {int64} NOT NULL CHECK (amount_minor > 0),
    fee_minor     {int64} NOT NULL CHECK (fee_minor >= 0 AND fee_minor <= amount_minor)
);
CREATE INDEX cleared_items_by_payout ON cleared_items (payout_id);
-- The runs' work lists: completed settlements and refunds by when they completed.
CREATE INDEX settlements_by_completion ON settlements (store_id, completed_at) WHERE state = 'completed';
CREATE INDEX refunds_by_store ON refunds (store_id, created_at);
