-- Idempotency keys (issue 9): a client that lost its answer (its connection dropped, its
-- process restarted) retries with the same `Idempotency-Key` and gets the first answer back,
-- instead of a second order or result. A key is claimed before the request runs; every
-- transaction the request commits marks the claim applied in that same transaction (so
-- "applied" is exactly as durable as the change); the answer is kept when the request ends.
CREATE TABLE idempotency_keys (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    claim_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    applied_at INTEGER,
    completed_at INTEGER,
    status INTEGER,
    content_type TEXT,
    body TEXT,
    CHECK ((completed_at IS NULL) = (status IS NULL)),
    UNIQUE (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
