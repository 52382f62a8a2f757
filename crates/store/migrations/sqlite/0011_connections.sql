-- Instrument and EMR connections (issue 12). An instrument names itself in its messages
-- (HL7 MSH-3, ASTM H-5); its own test codes map to catalogue tests. Every inbound message is
-- kept with the acknowledgement it was answered with, in the transaction of what it posted:
-- the same sender and control id is answered from here and never posted twice, and a message
-- that could not be posted in full waits in the interface error queue for an analyst to fix
-- the mapping and replay it.

CREATE TABLE instruments (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    protocol TEXT NOT NULL CHECK (protocol IN ('hl7', 'astm')),
    sender TEXT NOT NULL,
    department TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    retired_at INTEGER
);
CREATE UNIQUE INDEX instruments_sender ON instruments (protocol, sender);

CREATE TABLE instrument_test_codes (
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    code TEXT NOT NULL,
    test_code TEXT NOT NULL,
    units TEXT,
    PRIMARY KEY (instrument_id, code)
);

CREATE TABLE interface_messages (
    id INTEGER PRIMARY KEY,
    protocol TEXT NOT NULL CHECK (protocol IN ('hl7', 'astm')),
    connection TEXT NOT NULL,
    sender TEXT NOT NULL,
    control_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    raw BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'error', 'replayed')),
    ack BLOB NOT NULL,
    errors TEXT NOT NULL,
    posted INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE UNIQUE INDEX interface_messages_key ON interface_messages (protocol, sender, control_id);
CREATE INDEX interface_messages_errors ON interface_messages (received_at) WHERE status = 'error';
CREATE INDEX interface_messages_connection ON interface_messages (connection, received_at);
