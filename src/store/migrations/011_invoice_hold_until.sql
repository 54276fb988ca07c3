-- Issue 12, hole 9: a merchant holds an invoice still waiting for hand-over until a date ("the
-- customer promised to pay by the 30th", POST /v1/invoices/:ref/hold with holdUntil). The
-- hand-over check does not hand it over before then, and runs again at that moment
-- (src/http/merchant-actions.ts, src/policy/handover-policy.ts). NULL: not held.
ALTER TABLE invoices ADD COLUMN hold_until timestamptz;
