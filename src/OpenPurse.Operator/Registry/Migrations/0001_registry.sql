-- The registry and ledger (the specification's information management server 32).
-- Amounts are integer minor units; times are ISO 8601 UTC text; ids are text.
-- One source for SQLite and PostgreSQL: the tokens int64 and blob in braces are column
-- types that Registry/SqlDialect.cs spells per engine (INTEGER or BIGINT, BLOB or BYTEA).

CREATE TABLE stores (
    store_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    mall_id     TEXT NULL,
    notify_url  TEXT NULL,
    created_at  TEXT NOT NULL
);

-- A store's published signing keys, found by the kid in a JWS header.
CREATE TABLE store_keys (
    kid         TEXT PRIMARY KEY,
    store_id    TEXT NOT NULL REFERENCES stores (store_id),
    jwk         TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE cards (
    card_id      TEXT PRIMARY KEY,               -- 16 digits
    key_version  {int64} NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    counter      {int64} NOT NULL CHECK (counter >= 0),  -- the last counter the operator saw the card reach
    issued_at    TEXT NOT NULL
);

-- The operator's shadow of each purse, as of the card's last completed transaction.
CREATE TABLE card_purses (
    card_id        TEXT NOT NULL REFERENCES cards (card_id),
    currency       TEXT NOT NULL,
    balance_minor  {int64} NOT NULL CHECK (balance_minor >= 0),
    PRIMARY KEY (card_id, currency)
);

CREATE TABLE settlements (
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
    state              TEXT NOT NULL CHECK (state IN ('authorized', 'completed', 'voided')),
    created_at         TEXT NOT NULL,
    completed_at       TEXT NULL,
    card_answer        {blob} NULL,
    completion_notice  TEXT NULL,                    -- ACN + SIG3
    receipt            TEXT NULL,                    -- receipt + SIG4
    UNIQUE (issuer, order_no)
);

-- One card is in at most one settlement at a time.
CREATE UNIQUE INDEX settlements_one_open_per_card ON settlements (card_id) WHERE state = 'authorized';

-- Double entry: every movement is a set of rows with one entry_id whose amounts sum to zero
-- per currency. Accounts: 'issued' (value the operator put into circulation), 'card:<id>', 'store:<id>'.
CREATE TABLE journal (
    entry_id      TEXT NOT NULL,
    account       TEXT NOT NULL,
    amount_minor  {int64} NOT NULL,
    currency      TEXT NOT NULL,
    reference     TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX journal_by_account ON journal (account, currency);
