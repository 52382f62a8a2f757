-- Closing the loop on a rejection (who resolved a problem-log entry and how; who completed a
-- recollection task, naming the replacement specimen) and the turnaround-time worklist, which
-- looks up each specimen's receipt and start-of-processing events.

ALTER TABLE problem_log ADD COLUMN resolved_by TEXT;
ALTER TABLE problem_log ADD COLUMN resolution TEXT;
ALTER TABLE recollect_tasks ADD COLUMN done_by TEXT;
ALTER TABLE recollect_tasks ADD COLUMN replacement_accession TEXT;

CREATE INDEX specimen_events_kind ON specimen_events (specimen_id, kind);
