-- Issue 10 item 9: an order records that the draw uses a winged (butterfly) collection set.
-- With a citrate tube first in the order of draw, a discard tube is then drawn before it
-- (CLSI GP41): the tubing's air would otherwise under-fill the citrate tube.
ALTER TABLE orders ADD COLUMN winged_collection_set BOOLEAN NOT NULL DEFAULT FALSE;
