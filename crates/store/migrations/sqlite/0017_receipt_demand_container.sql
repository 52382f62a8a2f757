-- Issue 10 items 4 and 5.
-- A tube's planned demand (the specimen volume its tests need, set when it is planned and
-- grown by add-ons) is kept apart from its measured content (volume_ul, recorded at receipt;
-- 0 before). Until now volume_ul held the demand before receipt and the content after.
ALTER TABLE specimens ADD COLUMN demand_ul INTEGER NOT NULL DEFAULT 0;
-- The container that actually arrived, attested at receipt (container and specimen_type
-- then hold what arrived, so results pick the specimen type really tested).
ALTER TABLE specimens ADD COLUMN received_container TEXT;

-- Existing tubes: the demand was volume_ul until receipt, and is unknown afterwards (the
-- receipt overwrote it); the measured content is the received volume, or 0 for a tube never
-- received. Aliquots (parent_id set) carry no demand of their own.
UPDATE specimens SET demand_ul = volume_ul
 WHERE parent_id IS NULL
   AND NOT EXISTS (SELECT 1 FROM specimen_events e
                    WHERE e.specimen_id = specimens.id AND e.kind = 'receive');
UPDATE specimens SET volume_ul = 0
 WHERE parent_id IS NULL
   AND NOT EXISTS (SELECT 1 FROM specimen_events e
                    WHERE e.specimen_id = specimens.id AND e.kind = 'receive');
