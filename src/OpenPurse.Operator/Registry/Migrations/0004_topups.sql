-- Top-ups by credit card (docs/reliability.md, "Top-up"): recorded before the authorizer is asked,
-- so that an authorization whose answer was lost is asked again with the same key; the CREDIT's
-- session is kept so that the card's answer, or its next greeting, says whether it ran. No card
-- number, expiry, PIN, encrypted card data or card token is kept: the last four digits only.
CREATE TABLE topups (
    topup_id          TEXT PRIMARY KEY,                -- the wallet's id, also the authorizer's idempotency key and the CREDIT's reference
    card_id           TEXT NOT NULL REFERENCES cards (card_id),
    amount_minor      {int64} NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL,
    request_digest    TEXT NOT NULL,                   -- SHA-256 of the request: the same id with another body is refused
    state             TEXT NOT NULL CHECK (state IN ('authorizing', 'declined', 'crediting', 'credited', 'captured', 'voiding', 'voided')),
    authorization_id  TEXT,
    last_four         TEXT,
    decline_code      TEXT,
    credit_greeting   {blob},                          -- the card's greeting the CREDIT was made for: rebuilds its session
    credit_challenge  {blob},
    response          TEXT,                            -- the approved answer, answered again to the same request
    card_answer       {blob},
    balance_after_minor {int64},
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
-- One CREDIT of a top-up open per card: the card's next session judges it.
CREATE UNIQUE INDEX topups_one_crediting_per_card ON topups (card_id) WHERE state = 'crediting';
-- The daily maximum, per card.
CREATE INDEX topups_by_card ON topups (card_id, created_at);
-- The sweeper's work: captures, voids, and authorizations whose answer was lost.
CREATE INDEX topups_open ON topups (updated_at) WHERE state IN ('authorizing', 'credited', 'voiding');
