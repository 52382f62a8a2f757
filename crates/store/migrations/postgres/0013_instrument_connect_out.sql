-- Instruments the laboratory system connects out to (the instrument listens): `host:port`.
-- Null for instruments that connect in to the listeners.
ALTER TABLE instruments ADD COLUMN connect_to TEXT;
