-- The admin audit trail: every request on the admin listener (allowed or refused) and every change
-- the station commands make, appended and never changed. Each engine refuses UPDATE and DELETE on
-- it with the triggers of 0003_admin_audit.<engine>.sql, which run in this migration's transaction.

CREATE TABLE admin_audit (
    event_id        TEXT PRIMARY KEY,     -- a version 7 UUID, which sorts by time
    occurred_at     TEXT NOT NULL,
    actor           TEXT NOT NULL,        -- the admin token's name, 'anonymous', or the OS user of a station command
    role            TEXT NULL,            -- administrator, auditor, station; NULL when anonymous
    action          TEXT NOT NULL,        -- store.register, card.block, store.list, audit.read, card.issue; 'none' when no admin endpoint matched
    target          TEXT NULL,            -- the store id, the masked card number; the path when no endpoint matched
    status          {int64} NOT NULL,     -- the HTTP status answered (a station command: 200, or its refusal's)
    code            TEXT NULL,            -- the refusal's stable code (docs/errors.md)
    remote_address  TEXT NULL             -- the caller's address; NULL for a station command
);

CREATE INDEX admin_audit_by_time ON admin_audit (occurred_at);
