-- A store's answers to the outcomes it is told: retells back off, and a completed settlement
-- whose store keeps refusing its ACN (or stays unreachable) becomes disputed, for the operator
-- to decide. The table is rebuilt because SQLite cannot change a CHECK constraint in place;
-- every row is kept.

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
    -- disputed: completed, but the store refused its ACN or stayed unreachable: the operator decides
    --           (return the amount to the card, or tell the store again).
    -- voided: the card provably never ran the debit (a later session at the same counter).
    -- expired: past the deadline with no word from the card; the store is told it is not paid.
    -- reversing: the card ran the debit of an expired (or returned disputed) settlement; the amount is owed back to it.
    -- reversed: the card was credited back.
    state              TEXT NOT NULL CHECK (state IN ('authorized', 'completed', 'disputed', 'voided', 'expired', 'reversing', 'reversed')),
    created_at         TEXT NOT NULL,
    deadline           TEXT NULL,                    -- when the sweeper expires an authorized settlement (NULL: never)
    start_response     TEXT NULL,                    -- round trip 1's answer, returned again to a retry
    completed_at       TEXT NULL,
    resolved_by        TEXT NULL,                    -- completion notice, card log, later session, sweeper, operator
    card_answer        {blob} NULL,
    completion_notice  TEXT NULL,                    -- ACN + SIG3
    receipt            TEXT NULL,                    -- receipt + SIG4
    void_notice        TEXT NULL,                    -- the signed notice that the store is not paid
    store_told_at      TEXT NULL,                    -- when the store acknowledged the final outcome
    store_attempts     {int64} NOT NULL DEFAULT 0,   -- sweeps that told the store without its acknowledgement
    store_refusals     {int64} NOT NULL DEFAULT 0,   -- of those, the ones it answered with a definitive refusal (4xx)
    store_failing_since TEXT NULL,                   -- the first of those
    store_next_at      TEXT NULL,                    -- the sweeper tells the store again from then (NULL: at its next sweep)
    store_given_up_at  TEXT NULL,                    -- the sweeper stopped telling (a void notice), or the settlement became disputed
    store_answer       TEXT NULL,                    -- the store's last answer: HTTP status and problem code, or why it was not reached
    reversal_id        TEXT NULL,                    -- the CREDIT's transaction reference
    reversal_greeting  {blob} NULL,                  -- the session the CREDIT was made for
    reversal_challenge {blob} NULL,                  -- that session's host challenge
    reversal_answer    {blob} NULL,
    UNIQUE (issuer, order_no)
);

INSERT INTO settlements_next (settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
                              card_id, card_greeting, expected_counter, state, created_at, deadline, start_response, completed_at,
                              resolved_by, card_answer, completion_notice, receipt, void_notice, store_told_at,
                              reversal_id, reversal_greeting, reversal_challenge, reversal_answer)
SELECT settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
       card_id, card_greeting, expected_counter, state, created_at, deadline, start_response, completed_at,
       resolved_by, card_answer, completion_notice, receipt, void_notice, store_told_at,
       reversal_id, reversal_greeting, reversal_challenge, reversal_answer
FROM settlements;

DROP TABLE settlements;
ALTER TABLE settlements_next RENAME TO settlements;

CREATE UNIQUE INDEX settlements_one_open_per_card ON settlements (card_id) WHERE state IN ('authorized', 'expired', 'reversing');
CREATE INDEX settlements_by_deadline ON settlements (deadline) WHERE state = 'authorized';
-- The sweeper's list of outcomes to tell; a disputed settlement waits for the operator instead.
CREATE INDEX settlements_store_untold ON settlements (created_at)
    WHERE store_told_at IS NULL AND store_given_up_at IS NULL AND state IN ('completed', 'voided', 'expired', 'reversing', 'reversed');
CREATE INDEX settlements_disputed ON settlements (created_at) WHERE state = 'disputed';
