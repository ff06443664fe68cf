-- A card's life: when it was blocked (NULL while active; cleared when unblocked), and the reason an
-- administrator gives for blocking or unblocking it, kept with the audit row of that action.

ALTER TABLE cards ADD COLUMN blocked_at TEXT NULL;

ALTER TABLE admin_audit ADD COLUMN reason TEXT NULL;
