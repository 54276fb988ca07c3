-- Screening a sign-up (issue 17, requirement 3): the identifiers the hub learned of each customer
-- (e-mail, the merchant's own customer id, IBAN, card fingerprint), kept only as salted hashes —
-- HMAC-SHA256 keyed with hub.identifierHashSecret over the merchant id, the kind and the normalised
-- value (src/screening/identifiers.ts) — never in plain. Written in the transaction of the
-- customer's upsert (src/ledger/payment-ledger.ts); deleted when the customer's personal data is
-- erased (src/privacy/erasure.ts) and with the customer row. The debtor follows the customer's
-- link (src/ledger/debtors.ts moves it along). Customers known before this migration are hashed
-- from their stored e-mail and merchant id when a worker starts (src/screening/store.ts).
CREATE TABLE identifier_hashes (
  merchant_id  text NOT NULL,
  debtor_id    text NOT NULL,
  customer_id  text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('email', 'merchant_ref', 'iban', 'card_fingerprint')),
  hash         text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, kind, hash)
);
-- Screening looks up one merchant's hashes; the merchant id is also inside every hash.
CREATE INDEX identifier_hashes_lookup ON identifier_hashes (merchant_id, kind, hash);
