-- Issue 16 item 1 (separation of duties): granting the administrator or director role takes
-- two administrators. The first requests the grant (with a reason), a second approves or
-- rejects it; the requester never decides their own request, nor the grantee theirs. At most
-- one request per user is pending (partial unique index); a decision is a guarded update
-- from `pending`, so of two administrators deciding at once exactly one succeeds.
CREATE TABLE role_grants (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by INTEGER NOT NULL REFERENCES users (id),
    requested_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by INTEGER REFERENCES users (id),
    decided_at INTEGER,
    decision_reason TEXT
);
CREATE UNIQUE INDEX role_grants_one_pending ON role_grants (user_id) WHERE status = 'pending';
CREATE INDEX role_grants_by_status ON role_grants (status, requested_at);
