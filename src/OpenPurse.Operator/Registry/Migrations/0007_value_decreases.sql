-- Value the card holder takes off the card (docs/reliability.md, "Transfer and cash-out"): a DEBIT
-- made for the card's session, whose effect (the payee card's credit, the payout) happens only once
-- the card's answer, or its next greeting, proves it ran. The DEBIT's session is kept so that the
-- answer can be opened and the greeting judged.
CREATE TABLE transfers (
    transfer_id       TEXT PRIMARY KEY,                -- the wallet's id, also the DEBIT's reference
    card_id           TEXT NOT NULL REFERENCES cards (card_id),
    payee_card_id     TEXT NOT NULL REFERENCES cards (card_id),
    amount_minor      {int64} NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL,
    request_digest    TEXT NOT NULL,                   -- SHA-256 of the request: the same id with another body is refused
    state             TEXT NOT NULL CHECK (state IN ('debiting', 'debited', 'abandoned')),
    debit_greeting    {blob} NOT NULL,                 -- the card's greeting the DEBIT was made for: rebuilds its session
    debit_challenge   {blob} NOT NULL,
    response          TEXT NOT NULL,                   -- the DEBIT and its value decrease, answered again to the same request
    card_answer       {blob},
    balance_after_minor {int64},
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
-- One DEBIT of a transfer open per card: the card's next session judges it.
CREATE UNIQUE INDEX transfers_one_debiting_per_card ON transfers (card_id) WHERE state = 'debiting';

-- A cash-out is also the payout the bank is asked to make: the IBAN is kept for clearing (and shown
-- only in the export meant for the bank), the account holder's name with it.
CREATE TABLE cashouts (
    cashout_id        TEXT PRIMARY KEY,
    card_id           TEXT NOT NULL REFERENCES cards (card_id),
    amount_minor      {int64} NOT NULL CHECK (amount_minor > 0),
    currency          TEXT NOT NULL,
    request_digest    TEXT NOT NULL,
    iban              TEXT NOT NULL,                   -- electronic form, checked (ISO 13616)
    account_holder    TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('debiting', 'debited', 'paid', 'returned', 'abandoned')),
    debit_greeting    {blob} NOT NULL,
    debit_challenge   {blob} NOT NULL,
    response          TEXT NOT NULL,
    card_answer       {blob},
    balance_after_minor {int64},
    debited_at        TEXT,                            -- when the payout became due
    cleared_at        TEXT,                            -- when it was marked paid or returned
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX cashouts_one_debiting_per_card ON cashouts (card_id) WHERE state = 'debiting';
-- The payouts waiting for clearing.
CREATE INDEX cashouts_payouts_due ON cashouts (debited_at) WHERE state = 'debited';

