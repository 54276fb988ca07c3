-- Some PSPs re-deliver one id for several changes and make the hub fetch the current state
-- (Mollie classic: `id=tr_…`). Each delivery is its own inbound event; the fact it turns out to
-- report (payment id + status) is applied once.
ALTER TABLE inbound_events ADD COLUMN fact_key text;
CREATE INDEX inbound_events_fact ON inbound_events (merchant_id, provider, fact_key) WHERE fact_key IS NOT NULL;
