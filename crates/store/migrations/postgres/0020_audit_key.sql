-- Issue 16 item 4: the audit chain keyed with an HMAC key kept outside the database, and a
-- head that only advances.
--
-- `key_id` names the key the chain is keyed with (never the key itself) and `keyed_from` the
-- first event hashed with it; both are set once, when the key file is created, and then
-- never change. Earlier events keep their SHA-256 hashes (scheme 1). `head_mac` is the
-- HMAC of the head's sequence number and hash under the key: a head rewound by someone
-- without the key does not match it.
ALTER TABLE audit_head ADD COLUMN key_id TEXT, ADD COLUMN keyed_from BIGINT,
    ADD COLUMN head_mac TEXT;

CREATE FUNCTION aliquot_audit_head_advances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE'
        OR NEW.seq < OLD.seq
        OR (OLD.key_id IS NOT NULL
            AND (NEW.key_id IS DISTINCT FROM OLD.key_id
                 OR NEW.keyed_from IS DISTINCT FROM OLD.keyed_from)) THEN
        RAISE EXCEPTION 'audit_head only advances';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_head_only_advances BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION aliquot_audit_head_advances();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION aliquot_append_only();
