-- Issue 10 item 8: retention by use, not only by specimen type. A specimen is kept for the
-- longest period of its type (retention_policies) and of every rule here naming that type and
-- one of its departments or tests (e.g. blood-bank whole blood 10 days beside CAP's 48 h for
-- haematology). Irreplaceable specimens are kept until a person decides (a domain rule).
-- Temperature history (items 2 and 3) needs no table: it is read from the chain of custody.
CREATE TABLE retention_use_policies (
    specimen_type TEXT NOT NULL,
    use_kind TEXT NOT NULL CHECK (use_kind IN ('department', 'test')),
    use_code TEXT NOT NULL,
    hours INTEGER NOT NULL CHECK (hours > 0),
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (specimen_type, use_kind, use_code)
);
