-- Issue 12: one message per order. A result released while its order's newest outbox row for
-- a destination was never attempted joins that row's message; this index finds that row.
CREATE INDEX outbox_order ON outbox (order_id, destination_id, id);
