-- The dashboard's tubes received per hour (issue 15 item 10) reads the receipts since a
-- time: without this index it scans every custody event.
CREATE INDEX specimen_events_kind_at ON specimen_events (kind, at);
