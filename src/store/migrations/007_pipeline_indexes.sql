-- Issue 7 (pipeline performance). Processing an event stamps its exchange rows by
-- inbound_event_id (src/pipeline/process-event.ts); without an index that was a sequential scan
-- of the whole exchanges table per event, so the cost of an event grew with the table.
-- Partial: outbound exchanges and agency pushes have no inbound event.
CREATE INDEX exchanges_inbound_event ON exchanges (inbound_event_id) WHERE inbound_event_id IS NOT NULL;
