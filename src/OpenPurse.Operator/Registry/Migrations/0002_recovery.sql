-- Recovery: a settlement no longer ends only by completion or a proven void. Past its deadline
-- the sweeper expires it; a debit the card ran for a settlement that did not complete is
-- reversed (credited back to the card). The table is rebuilt because SQLite cannot change a
-- CHECK constraint in place; every row is kept.

CREATE TABLE settlements_next (
    settlement_id      TEXT PRIMARY KEY,
    issuer             TEXT NOT NULL,                -- the mall, or the store without one
    order_no           TEXT NOT NULL,
    store_id           TEXT NOT NULL REFERENCES stores (store_id),
    bill               TEXT NOT NULL,
    bill_digest        TEXT NOT NULL UNIQUE,
    profile            TEXT NOT NULL CHECK (profile IN ('signed', 'lean')),
    amount_minor       {int64} NOT NULL CHECK (amount_minor > 0),
    currency           TEXT NOT NULL,
    card_id            TEXT NOT NULL REFERENCES cards (card_id),
    card_greeting      {blob} NOT NULL,                -- the card's INITIALIZE UPDATE answer: rebuilds the session
    expected_counter   {int64} NOT NULL,
    -- authorized: the card holds the debit's commands and may run them.
    -- completed: the card ran the debit (its answer, or its log); the store is owed the amount.
    -- voided: the card provably never ran the debit (a later session at the same counter).
    -- expired: past the deadline with no word from the card; the store is told it is not paid.
    -- reversing: the card ran the debit of an expired settlement; the amount is owed back to it.
    -- reversed: the card was credited back.
    state              TEXT NOT NULL CHECK (state IN ('authorized', 'completed', 'voided', 'expired', 'reversing', 'reversed')),
    created_at         TEXT NOT NULL,
    deadline           TEXT NULL,                    -- when the sweeper expires an authorized settlement (NULL: never)
    start_response     TEXT NULL,                    -- round trip 1's answer, returned again to a retry
    completed_at       TEXT NULL,
    resolved_by        TEXT NULL,                    -- completion notice, card log, later session, sweeper
    card_answer        {blob} NULL,
    completion_notice  TEXT NULL,                    -- ACN + SIG3
    receipt            TEXT NULL,                    -- receipt + SIG4
    void_notice        TEXT NULL,                    -- the signed notice that the store is not paid
    store_told_at      TEXT NULL,                    -- when the store acknowledged the final outcome
    reversal_id        TEXT NULL,                    -- the CREDIT's transaction reference
    reversal_greeting  {blob} NULL,                  -- the session the CREDIT was made for
    reversal_challenge {blob} NULL,                  -- that session's host challenge
    reversal_answer    {blob} NULL,
    UNIQUE (issuer, order_no)
);

INSERT INTO settlements_next (settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
                              card_id, card_greeting, expected_counter, state, created_at, deadline, completed_at,
                              card_answer, completion_notice, receipt, store_told_at)
SELECT settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
       card_id, card_greeting, expected_counter, state, created_at, created_at, completed_at,
       card_answer, completion_notice, receipt, CASE WHEN receipt IS NULL THEN NULL ELSE completed_at END
FROM settlements;

DROP TABLE settlements;
ALTER TABLE settlements_next RENAME TO settlements;

-- One card is in at most one unresolved settlement: one the card may still debit, or one whose
-- debit is still owed back to it. Its next greeting resolves it (docs/reliability.md).
CREATE UNIQUE INDEX settlements_one_open_per_card ON settlements (card_id) WHERE state IN ('authorized', 'expired', 'reversing');

-- The sweeper's work lists: authorized settlements by deadline, final outcomes the store has not acknowledged.
CREATE INDEX settlements_by_deadline ON settlements (deadline) WHERE state = 'authorized';
CREATE INDEX settlements_store_untold ON settlements (created_at) WHERE store_told_at IS NULL AND state IN ('completed', 'voided', 'expired', 'reversing', 'reversed');

-- A load of value onto a card (issuing station), recorded before the CREDIT goes to the card so
-- that a station that dies after the card took it cannot leave value the ledger does not know:
-- the card's next greeting shows the CREDIT in its log and the load is posted then.
CREATE TABLE card_loads (
    load_id           TEXT PRIMARY KEY,
    card_id           TEXT NOT NULL REFERENCES cards (card_id),
    amount_minor      {int64} NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL,
    expected_counter  {int64} NOT NULL,
    session_counter   {int64} NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'loaded', 'failed')),
    created_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX card_loads_one_pending_per_card ON card_loads (card_id) WHERE state = 'pending';
