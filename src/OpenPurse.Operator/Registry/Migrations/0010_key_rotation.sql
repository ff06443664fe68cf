-- Key rotation (docs/operations.md, "Rotating keys").
--
-- A store's key retired by an administrator stays in store_keys for the record; every signature
-- under it is refused from then on, and its kid can never be registered again.
ALTER TABLE store_keys ADD COLUMN retired_at TEXT NULL;

-- The operator's signing keys as every node sees them: the private keys stay in the vault (the
-- software vault's file or the PKCS#11 token, one label per key); here are their public halves
-- and their states. next: published in the JWKS, not yet signing. active: signing (exactly one).
-- previous: the active key before the last activation, still published. retired: no longer
-- published, no longer accepted by the operator's own code. A node on a registry without rows
-- enters its vault's key as the active one on its first start.
CREATE TABLE operator_keys (
    kid           TEXT PRIMARY KEY,
    jwk           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('next', 'active', 'previous', 'retired')),
    created_at    TEXT NOT NULL,
    activated_at  TEXT NULL,
    retired_at    TEXT NULL
);

-- Exactly one active key at most, whatever two administrators do at once.
CREATE UNIQUE INDEX operator_keys_one_active ON operator_keys (state) WHERE state = 'active';
