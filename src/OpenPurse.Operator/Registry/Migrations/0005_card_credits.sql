-- Value owed to a card that it takes at its next sync (docs/reliability.md, "Card credits"): a
-- store's refund, a transfer from another card, points a store awarded. Recorded with its journal
-- entry (whoever gives the value → pending) in the transaction that decides it; the card's next
-- sync makes the CREDIT, whose session is kept so that the card's answer, or its next greeting,
-- says whether it ran (pending → the card's account, once).
CREATE TABLE card_credits (
    credit_id         TEXT PRIMARY KEY,                -- the movement's id, the reference of its journal entries
    card_id           TEXT NOT NULL REFERENCES cards (card_id),
    purpose           TEXT NOT NULL CHECK (purpose IN ('refund', 'transfer', 'points')),
    source_id         TEXT NOT NULL,                   -- the refund, the transfer, the settlement that earned the points
    amount_minor      {int64} NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('owed', 'crediting', 'credited')),
    value_update_id   TEXT UNIQUE,                     -- the CREDIT's reference while crediting, and the one the card took
    credit_greeting   {blob},                          -- the card's greeting the CREDIT was made for: rebuilds its session
    credit_challenge  {blob},
    card_answer       {blob},
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (purpose, source_id)                        -- one credit per source: owing it again is a no-op
);
-- The sync's work: what a card is owed, oldest first.
CREATE INDEX card_credits_open ON card_credits (card_id, created_at) WHERE state IN ('owed', 'crediting');
-- One CREDIT open per card: the card's next session judges it.
CREATE UNIQUE INDEX card_credits_one_crediting_per_card ON card_credits (card_id) WHERE state = 'crediting';
