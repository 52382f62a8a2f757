-- Issue 16 item 7: login throttling per (source address, account) with progressive delay.
-- One aggregate counter per pair and window instead of a lock per username; rows whose
-- latest failure is older than the window are deleted when the next failure is counted.
DROP TABLE login_failures;

CREATE TABLE login_attempts (
    address TEXT NOT NULL,
    account TEXT NOT NULL,
    failures INTEGER NOT NULL CHECK (failures > 0),
    first_failure_at INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    PRIMARY KEY (address, account)
);
CREATE INDEX login_attempts_account ON login_attempts (account, last_failure_at);
CREATE INDEX login_attempts_last ON login_attempts (last_failure_at);
