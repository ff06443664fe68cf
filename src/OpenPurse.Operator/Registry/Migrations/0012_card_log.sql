-- The operator's card log (docs/reliability.md, "The card log"): every record a card wrote for a
-- value change that reached the operator authenticated (in a card answer unwrapped under its
-- session's MAC, or in an authentic greeting), kept in the transaction of the state change it
-- proved, for the careful examination (docs/operations.md). A record seen again is a no-op; one that
-- differs from the kept record of the same card and counter is kept aside, never over it.
CREATE TABLE card_log (
    card_id              TEXT NOT NULL REFERENCES cards (card_id),
    counter              {int64} NOT NULL CHECK (counter > 0),
    kind                 TEXT NOT NULL CHECK (kind IN ('debit', 'credit')),
    amount_minor         {int64} NOT NULL CHECK (amount_minor >= 0),
    currency             TEXT NOT NULL,
    balance_after_minor  {int64} NOT NULL CHECK (balance_after_minor >= 0),
    transaction_ref      TEXT NOT NULL,                 -- the operator's id of the order the card ran
    digest               TEXT NOT NULL,                 -- the order's digest, base64url
    received_at          TEXT NOT NULL,
    source               TEXT NOT NULL,                 -- the flow that delivered it: settlement, topup, card_credit, transfer, ...
    PRIMARY KEY (card_id, counter)
);
CREATE INDEX card_log_by_ref ON card_log (transaction_ref);

-- Records that differ from the kept one for the same card and counter: the examination lists each.
CREATE TABLE card_log_conflicts (
    conflict_id          TEXT PRIMARY KEY,
    card_id              TEXT NOT NULL REFERENCES cards (card_id),
    counter              {int64} NOT NULL,
    kind                 TEXT NOT NULL,
    amount_minor         {int64} NOT NULL,
    currency             TEXT NOT NULL,
    balance_after_minor  {int64} NOT NULL,
    transaction_ref      TEXT NOT NULL,
    digest               TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    source               TEXT NOT NULL,
    UNIQUE (card_id, counter, kind, amount_minor, currency, balance_after_minor, transaction_ref, digest)
);

-- Where each card's log begins: the counter the operator had seen each card reach when the log was
-- introduced. A transaction that put the card at or below it was finished before records were
-- kept, and the examination does not look for its record.
CREATE TABLE card_log_start (
    card_id   TEXT PRIMARY KEY REFERENCES cards (card_id),
    counter   {int64} NOT NULL
);
INSERT INTO card_log_start (card_id, counter) SELECT card_id, counter FROM cards WHERE counter > 0;
