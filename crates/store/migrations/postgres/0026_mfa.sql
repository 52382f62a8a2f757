-- Issue 16: a second factor (TOTP, RFC 6238) with one-time recovery codes.
-- The secret must be readable to check a code (it cannot be hashed); it is never shown again
-- after enrolment and never leaves the store through a read use case. `confirmed_at` is set
-- by the first code the user enters; until then the enrolment is pending and not required
-- at login. `last_step` is the last time step accepted: a code is accepted only for a later
-- step (guarded update), so the same code cannot be used twice.
CREATE TABLE user_mfa (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    secret TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT
);

-- Recovery codes: SHA-256 of 80 random bits each, used once.
CREATE TABLE mfa_recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
