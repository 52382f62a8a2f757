-- The chain of custody is append-only, like the audit trail and the access log: a custody
-- event is never changed or removed, a correction is a new event.
CREATE TRIGGER specimen_events_no_update BEFORE UPDATE ON specimen_events
BEGIN
    SELECT RAISE(ABORT, 'specimen_events is append-only');
END;
CREATE TRIGGER specimen_events_no_delete BEFORE DELETE ON specimen_events
BEGIN
    SELECT RAISE(ABORT, 'specimen_events is append-only');
END;
