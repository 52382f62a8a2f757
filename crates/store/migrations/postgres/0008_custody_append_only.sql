-- The chain of custody is append-only, like the audit trail and the access log: a custody
-- event is never changed or removed, a correction is a new event.
CREATE TRIGGER specimen_events_no_update BEFORE UPDATE OR DELETE ON specimen_events
    FOR EACH ROW EXECUTE FUNCTION aliquot_append_only();
CREATE TRIGGER specimen_events_no_truncate BEFORE TRUNCATE ON specimen_events
    FOR EACH STATEMENT EXECUTE FUNCTION aliquot_append_only();
