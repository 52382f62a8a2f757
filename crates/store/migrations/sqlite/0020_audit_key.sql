-- Issue 16 item 4: the audit chain keyed with an HMAC key kept outside the database, and a
-- head that only advances.
--
-- `key_id` names the key the chain is keyed with (never the key itself) and `keyed_from` the
-- first event hashed with it; both are set once, when the key file is created, and then
-- never change. Earlier events keep their SHA-256 hashes (scheme 1). `head_mac` is the
-- HMAC of the head's sequence number and hash under the key: a head rewound by someone
-- without the key does not match it.
ALTER TABLE audit_head ADD COLUMN key_id TEXT;
ALTER TABLE audit_head ADD COLUMN keyed_from INTEGER;
ALTER TABLE audit_head ADD COLUMN head_mac TEXT;

CREATE TRIGGER audit_head_only_advances BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq
    OR (OLD.key_id IS NOT NULL
        AND (NEW.key_id IS NOT OLD.key_id OR NEW.keyed_from IS NOT OLD.keyed_from))
BEGIN
    SELECT RAISE(ABORT, 'audit_head only advances');
END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head only advances');
END;
