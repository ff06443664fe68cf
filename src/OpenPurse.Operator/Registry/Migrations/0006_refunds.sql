-- Refunds by a store (docs/reliability.md, "Refund"): a store gives back all or part of a payment
-- it was paid, in one or more refunds, never more in all than the settlement's amount. Each is
-- recorded with its entry store → pending in one transaction; the card takes the value at its
-- next sync. Refunds of one settlement are serialized (an advisory lock on PostgreSQL, the single
-- writer on SQLite), so the sum of its refunds is read and extended by one transaction at a time.
CREATE TABLE refunds (
    refund_id          TEXT PRIMARY KEY,                -- the store's id, also the idempotency key and the journal reference
    settlement_id      TEXT NOT NULL REFERENCES settlements (settlement_id),
    store_id           TEXT NOT NULL REFERENCES stores (store_id),
    card_id            TEXT NOT NULL REFERENCES cards (card_id),
    amount_minor       {int64} NOT NULL CHECK (amount_minor > 0),
    currency           TEXT NOT NULL,
    refunded_total_minor {int64} NOT NULL CHECK (refunded_total_minor >= amount_minor),  -- the settlement's refunds up to this one
    reason             TEXT NULL,
    request_digest     TEXT NOT NULL,                   -- SHA-256 of the request but its date: the same id with another request is refused
    request            TEXT NOT NULL,                   -- the store's signed request, as it came
    state              TEXT NOT NULL CHECK (state IN ('owed', 'credited')),
    notice             TEXT NOT NULL,                   -- the operator's signed notice of the current state
    created_at         TEXT NOT NULL,
    credited_at        TEXT NULL
);
CREATE INDEX refunds_by_settlement ON refunds (settlement_id);
CREATE INDEX refunds_owed ON refunds (created_at) WHERE state = 'owed';
