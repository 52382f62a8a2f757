-- Issue 16 item 4: the access log (who read which patient's data) chained like the audit
-- trail. Every row written from now on has its place in the chain (`seq`, 1, 2, 3, …), the
-- previous row's hash and its own: SHA-256 over the previous hash and every column, or, once
-- the database has an audit key, HMAC-SHA256 under that key (from `access_head.keyed_from`
-- on). `access_head` holds the newest row's place and hash (and their MAC under the key), and
-- only advances. Rows written before this migration have no place in the chain.
ALTER TABLE access_log ADD COLUMN seq BIGINT, ADD COLUMN prev_hash TEXT, ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX access_log_seq ON access_log (seq) WHERE seq IS NOT NULL;

CREATE TABLE access_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    key_id TEXT,
    keyed_from BIGINT,
    head_mac TEXT
);
INSERT INTO access_head (id, seq, last_hash) VALUES (1, 0, 'genesis');

CREATE FUNCTION aliquot_access_head_advances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE'
        OR NEW.seq < OLD.seq
        OR (OLD.key_id IS NOT NULL
            AND (NEW.key_id IS DISTINCT FROM OLD.key_id
                 OR NEW.keyed_from IS DISTINCT FROM OLD.keyed_from)) THEN
        RAISE EXCEPTION 'access_head only advances';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER access_head_only_advances BEFORE UPDATE OR DELETE ON access_head
    FOR EACH ROW EXECUTE FUNCTION aliquot_access_head_advances();
CREATE TRIGGER access_head_no_truncate BEFORE TRUNCATE ON access_head
    FOR EACH STATEMENT EXECUTE FUNCTION aliquot_append_only();
