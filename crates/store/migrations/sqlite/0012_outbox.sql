-- Outbound results to the EMR (issue 12): a transactional outbox. A released or corrected
-- result writes one row per active destination in the transaction that releases it; the
-- sender worker sends each destination's rows strictly in id order over MLLP and marks a row
-- sent only with the acknowledgement that answers its control id (MSH-10). A row refused too
-- often is `failed` and holds its destination's queue until an analyst retries or skips it.

CREATE TABLE outbound_destinations (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    retired_at INTEGER
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    destination_id INTEGER NOT NULL REFERENCES outbound_destinations (id),
    order_id INTEGER NOT NULL REFERENCES orders (id),
    result_id INTEGER NOT NULL REFERENCES results (id),
    result_version INTEGER NOT NULL,
    control_id TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL,
    refusals INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    message BLOB,
    ack BLOB,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
-- The head of each destination's queue: its oldest row neither sent nor skipped.
CREATE INDEX outbox_queue ON outbox (destination_id, id) WHERE status IN ('pending', 'failed');
CREATE INDEX outbox_destination ON outbox (destination_id, id);
