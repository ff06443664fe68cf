-- A card's life, continued (docs/operations.md, "A card's life"): the person a card is registered
-- to, and the replacement of a lost card by a new one with the old one's value.

-- A card's holder: only what an operator needs to find the holder's cards and move their value, a
-- name and one contact. The id is random, never a card number; erasing a holder on request clears
-- the name and the contact and keeps the row, the cards and their ledger.
CREATE TABLE card_holders (
    holder_id    TEXT PRIMARY KEY,               -- a random UUID
    name         TEXT NULL,                      -- as given (NFC, trimmed); NULL once erased
    name_folded  TEXT NULL,                      -- lower-cased, for the case-insensitive search
    contact      TEXT NULL,                      -- an e-mail address (lower-cased) or a phone number (+ and digits); NULL once erased
    created_at   TEXT NOT NULL,
    erased_at    TEXT NULL
);
CREATE INDEX card_holders_by_contact ON card_holders (contact);

ALTER TABLE cards ADD COLUMN holder_id TEXT NULL REFERENCES card_holders (holder_id);
CREATE INDEX cards_by_holder ON cards (holder_id);

-- A lost card replaced by a new one: one row per old card, ever (replacing twice is refused).
CREATE TABLE card_replacements (
    replacement_id  TEXT PRIMARY KEY,
    old_card_id     TEXT NOT NULL UNIQUE REFERENCES cards (card_id),
    new_card_id     TEXT NOT NULL UNIQUE REFERENCES cards (card_id),
    reason          TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

-- What a replacement carried to the new card, each as one card credit (purpose 'replacement',
-- source the carry): the old card's account (source 'balance': what it held beyond what its open
-- debits may still take), or the return of a debit owed back to the old card (source 'return',
-- once per settlement).
CREATE TABLE card_carries (
    carry_id        TEXT PRIMARY KEY,
    replacement_id  TEXT NOT NULL REFERENCES card_replacements (replacement_id),
    source          TEXT NOT NULL CHECK (source IN ('balance', 'return')),
    settlement_id   TEXT NULL UNIQUE REFERENCES settlements (settlement_id),
    amount_minor    {int64} NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX card_carries_by_replacement ON card_carries (replacement_id);

-- A card credit may now be a replacement's. The table is rebuilt because SQLite cannot change a
-- CHECK constraint in place; every row is kept.
CREATE TABLE card_credits_next (
    credit_id         TEXT PRIMARY KEY,
    card_id           TEXT NOT NULL REFERENCES cards (card_id),
    purpose           TEXT NOT NULL CHECK (purpose IN ('refund', 'transfer', 'points', 'replacement')),
    source_id         TEXT NOT NULL,
    amount_minor      {int64} NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('owed', 'crediting', 'credited')),
    value_update_id   TEXT UNIQUE,
    credit_greeting   {blob},
    credit_challenge  {blob},
    card_answer       {blob},
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (purpose, source_id)
);

INSERT INTO card_credits_next (credit_id, card_id, purpose, source_id, amount_minor, currency, state, value_update_id,
                               credit_greeting, credit_challenge, card_answer, created_at, updated_at)
SELECT credit_id, card_id, purpose, source_id, amount_minor, currency, state, value_update_id,
       credit_greeting, credit_challenge, card_answer, created_at, updated_at
FROM card_credits;

DROP TABLE card_credits;
ALTER TABLE card_credits_next RENAME TO card_credits;

CREATE INDEX card_credits_open ON card_credits (card_id, created_at) WHERE state IN ('owed', 'crediting');
CREATE UNIQUE INDEX card_credits_one_crediting_per_card ON card_credits (card_id) WHERE state = 'crediting';
