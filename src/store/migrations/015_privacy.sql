-- Personal data kept small (issue 13, item 6): raw PSP payloads and exchange bodies are purged of
-- personal data after the retention period (src/privacy/retention.ts); a debtor's erasure request
-- (GDPR art. 17) does the same at once for that debtor (src/privacy/erasure.ts). The accounting
-- trail (invoices, claims, cases, amounts, status history) stays.
ALTER TABLE inbound_events ADD COLUMN purged_at timestamptz;
ALTER TABLE exchanges ADD COLUMN purged_at timestamptz;
ALTER TABLE partner_updates ADD COLUMN purged_at timestamptz;
ALTER TABLE customers ADD COLUMN erased_at timestamptz;
CREATE INDEX inbound_events_unpurged ON inbound_events (received_at) WHERE purged_at IS NULL;
CREATE INDEX exchanges_unpurged ON exchanges (created_at) WHERE purged_at IS NULL;
CREATE INDEX partner_updates_unpurged ON partner_updates (received_at) WHERE purged_at IS NULL;
