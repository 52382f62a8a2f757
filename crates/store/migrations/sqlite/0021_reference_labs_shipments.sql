-- Send-outs to reference laboratories (issue 14 item 4). A reference laboratory is registered
-- with its name, address and CLIA number (printed beside every result it performed) and its
-- expected turnaround time (the outstanding list's due time), and its own test codes mapped
-- to catalogue tests (as an instrument's are). Tubes sent out to one laboratory at one
-- temperature are packed into a shipment with a manifest; the shipment moves created →
-- shipped (courier, tracking number) → received → resulted, each step a row of
-- `shipment_events` (append-only) beside its audit entry. A send-out names its reference
-- laboratory and, once packed, its shipment; older send-outs name neither.

CREATE TABLE reference_labs (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    clia TEXT NOT NULL,
    phone TEXT,
    expected_tat_hours INTEGER NOT NULL CHECK (expected_tat_hours > 0),
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    retired_at INTEGER
);

CREATE TABLE reference_lab_test_codes (
    reference_lab_id INTEGER NOT NULL REFERENCES reference_labs (id),
    code TEXT NOT NULL,
    test_code TEXT NOT NULL,
    PRIMARY KEY (reference_lab_id, code)
);
CREATE UNIQUE INDEX reference_lab_test_codes_test ON reference_lab_test_codes (reference_lab_id, test_code);

CREATE TABLE shipments (
    id INTEGER PRIMARY KEY,
    manifest TEXT NOT NULL UNIQUE,
    reference_lab_id INTEGER NOT NULL REFERENCES reference_labs (id),
    status TEXT NOT NULL CHECK (status IN ('created', 'shipped', 'received', 'resulted')),
    temperature TEXT NOT NULL,
    packed_at INTEGER NOT NULL,
    packed_by TEXT NOT NULL,
    courier TEXT,
    tracking TEXT,
    shipped_at INTEGER,
    received_at INTEGER,
    resulted_at INTEGER,
    version INTEGER NOT NULL
);
CREATE INDEX shipments_status ON shipments (status, id);

CREATE TABLE shipment_events (
    id INTEGER PRIMARY KEY,
    shipment_id INTEGER NOT NULL REFERENCES shipments (id),
    at INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX shipment_events_shipment ON shipment_events (shipment_id, id);

CREATE TRIGGER shipment_events_no_update BEFORE UPDATE ON shipment_events
BEGIN
    SELECT RAISE(ABORT, 'shipment_events is append-only');
END;
CREATE TRIGGER shipment_events_no_delete BEFORE DELETE ON shipment_events
BEGIN
    SELECT RAISE(ABORT, 'shipment_events is append-only');
END;

ALTER TABLE send_outs ADD COLUMN reference_lab_id INTEGER REFERENCES reference_labs (id);
ALTER TABLE send_outs ADD COLUMN shipment_id INTEGER REFERENCES shipments (id);
CREATE INDEX send_outs_shipment ON send_outs (shipment_id);
