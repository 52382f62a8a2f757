-- Patient reports (issue 14): every version of an order's report as it was issued. A version
-- keeps the report's whole content (the JSON the PDF is rendered from, display text
-- included), so `?version=N` renders exactly what was issued then, also after a correction,
-- and the same version gives the same PDF bytes. A new version is issued when the report's
-- content changes (a result released or corrected, a critical call documented, ...). Like
-- the audit trail and result versions, report versions are never changed or removed.

CREATE TABLE report_versions (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('preliminary', 'final', 'corrected')),
    content_sha256 TEXT NOT NULL,
    document TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    issued_by TEXT NOT NULL,
    UNIQUE (order_id, version)
);

-- Batch print: results released or corrected since a time.
CREATE INDEX results_updated ON results (updated_at) WHERE status IN ('released', 'corrected');

CREATE TRIGGER report_versions_no_update BEFORE UPDATE ON report_versions
BEGIN
    SELECT RAISE(ABORT, 'report_versions is append-only');
END;
CREATE TRIGGER report_versions_no_delete BEFORE DELETE ON report_versions
BEGIN
    SELECT RAISE(ABORT, 'report_versions is append-only');
END;
