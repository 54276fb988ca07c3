-- Issue 14 (the pipeline in batches), supporting: the outbox is a queue — rows go in pending, are
-- claimed, finished, and (src/outbox/sweep.ts) deleted after delivery.doneRetentionDays — so its
-- indexes serve the queue's questions and only hold the rows those questions are about.
--
-- What the queries need (checked with EXPLAIN ANALYZE on PostgreSQL 15 over 56,000 rows: 50,000
-- done, 5,200 pending in the hub lane, 2,000 of them hand-over checks due days ahead, 800 in a
-- partner lane, 50 in flight, 100 dead):
--  * the batch claim (src/outbox/batch.ts): `lane = 'hub' AND kind = ANY($4) AND status =
--    'pending' AND next_attempt_at <= now ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED`. The planner
--    answers `ORDER BY id LIMIT n` by walking an index in id order and filtering, expecting the
--    matching rows to be spread evenly; in a queue they are the newest. With only outbox_due it
--    walked the primary key — every done row first — and filtered 52,000 rows to find 200
--    (7-12 ms, growing with the table). On (id) WHERE pending it walks the pending rows only
--    (0.8 ms; it steps over the pending rows not yet due that are older, here the 2,000 hand-over
--    checks). Tried and not taken by the planner for this claim: (lane, id), (lane,
--    next_attempt_at) and (lane, kind, id) WHERE pending; the last serves a claim written with
--    `kind = $1` (0.1 ms) but not `kind = ANY(…)`, and next to (id) it was not chosen at all.
--  * the reconciler's due rows (dueRows, every lane): a bitmap scan of the pending index, about
--    as before at this size (3-6 ms on a busy machine), no longer growing with the done rows.
--    Lane-prefixed questions (dueRows for one lane, wakeLane, nextInCase, WAITS_FOR_OLDER) use
--    outbox_case_order (migration 003: lane, case_id, id over pending and in-flight rows).
--  * the lease release (status = 'in_flight' AND locked_until < now): a tiny index of its own.
--  * the dead letter (/v1/deliveries, the leakage report): a merchant's dead rows, newest first.
--  * the retention sweep (finished rows by done_at) and /v1/deliveries?status=cancelled.
-- outbox_due (status, next_attempt_at) held every row and is replaced by these: a row's life
-- (insert, claim, finish) still writes the same number of index entries, into indexes a fraction
-- of the size. Built inside the migration's transaction (not CONCURRENTLY): on a large outbox the
-- first start with this migration holds writes to the outbox for the few seconds the builds take.
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_in_flight ON outbox (locked_until) WHERE status = 'in_flight';
CREATE INDEX outbox_dead ON outbox (merchant_id, id) WHERE status = 'dead';
CREATE INDEX outbox_finished ON outbox (status, done_at) WHERE status IN ('done', 'cancelled');
-- Every Stripe payment event asks whether it is the echo of the hub's own write-back
-- (src/ledger/payment-ledger.ts writeBackEcho), and a write-back whether an earlier one did the
-- same (src/notify/stripe-writeback-stage.ts): both by invoice, among psp.writeback rows only.
-- Without this each was a sequential scan of the outbox. Write-back rows are few; no other row is in it.
CREATE INDEX outbox_writebacks ON outbox (invoice_id) WHERE kind = 'psp.writeback';

-- Autovacuum for the queue-like tables (PostgreSQL; PGlite runs no autovacuum at all — the sweep
-- vacuums there, src/outbox/sweep.ts). The defaults wait for 20 % of a table to be dead before
-- vacuuming it: on the outbox, where every row is updated twice and then deleted, that lets
-- dead rows pile up to a fifth of the table between passes, which every claim and index scan then
-- steps over. Here a pass starts after ~1 % (plus a small floor), statistics follow the quickly
-- changing status mix (the planner's choice of the partial indexes depends on it), and the
-- insert-driven pass keeps the visibility map fresh for index-only scans.
ALTER TABLE outbox SET (
  autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_insert_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000,
  autovacuum_vacuum_cost_delay = 1
);
-- Webhooks as received: inserted, then updated once when processed (and once more when purged).
ALTER TABLE inbound_events SET (
  autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.05
);
-- Agency updates: inserted, then updated once when applied.
ALTER TABLE partner_updates SET (
  autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.05
);
