-- Calls to one partner about one case keep their order (src/outbox/outbox.ts, WAITS_FOR_OLDER):
-- finding an older unfinished row of the same case in the same lane must not scan the outbox.
CREATE INDEX outbox_case_order ON outbox (lane, case_id, id) WHERE status IN ('pending', 'in_flight');
