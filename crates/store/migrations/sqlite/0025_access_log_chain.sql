-- Issue 16 item 4: the access log (who read which patient's data) chained like the audit
-- trail. Every row written from now on has its place in the chain (`seq`, 1, 2, 3, …), the
-- previous row's hash and its own: SHA-256 over the previous hash and every column, or, once
-- the database has an audit key, HMAC-SHA256 under that key (from `access_head.keyed_from`
-- on). `access_head` holds the newest row's place and hash (and their MAC under the key), and
-- only advances. Rows written before this migration have no place in the chain.
ALTER TABLE access_log ADD COLUMN seq INTEGER;
ALTER TABLE access_log ADD COLUMN prev_hash TEXT;
ALTER TABLE access_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX access_log_seq ON access_log (seq) WHERE seq IS NOT NULL;

CREATE TABLE access_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    key_id TEXT,
    keyed_from INTEGER,
    head_mac TEXT
);
INSERT INTO access_head (id, seq, last_hash) VALUES (1, 0, 'genesis');

CREATE TRIGGER access_head_only_advances BEFORE UPDATE ON access_head
WHEN NEW.seq < OLD.seq
    OR (OLD.key_id IS NOT NULL
        AND (NEW.key_id IS NOT OLD.key_id OR NEW.keyed_from IS NOT OLD.keyed_from))
BEGIN
    SELECT RAISE(ABORT, 'access_head only advances');
END;
CREATE TRIGGER access_head_no_delete BEFORE DELETE ON access_head
BEGIN
    SELECT RAISE(ABORT, 'access_head only advances');
END;
