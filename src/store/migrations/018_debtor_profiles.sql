-- Issue 17: the payment-behaviour flags last sent to the merchant per debtor (src/profile/flags-sync.ts).
-- The profile itself is derived on demand from the accounting trail (src/profile/compute.ts); only
-- the set of flags the merchant was last told about is kept, so `customer.flags_changed` fires once
-- per change of the set and never when nothing changed. Derived personal data: erased with the
-- debtor (src/privacy/erasure.ts); a row with no flag left is purged after the retention period
-- (src/privacy/retention.ts).
CREATE TABLE debtor_profiles (
  debtor_id       text PRIMARY KEY REFERENCES debtors(id),
  merchant_id     text NOT NULL,
  -- the names of the flags that were on, sorted (a JSON array of strings)
  flags           jsonb NOT NULL,
  -- the status_history row whose scan changed the set (NULL: a re-check as the windows moved on)
  history_id      bigint,
  changed_at      timestamptz NOT NULL,
  -- when a flag that is on may turn off by time alone (its oldest event leaving its window): re-checked then
  recheck_at      timestamptz
);
CREATE INDEX debtor_profiles_recheck ON debtor_profiles (recheck_at) WHERE recheck_at IS NOT NULL;
CREATE INDEX debtor_profiles_merchant ON debtor_profiles (merchant_id);
