-- Issue 12, hole 3: one debtor across the merchant's PSPs. A customer row is one PSP customer
-- (Stripe cus_…, Mollie cst_…); a debtor is the person the merchant knows, keyed by the
-- merchant's own customer id from PSP metadata (external_ref) or, when the merchant opts in, by a
-- normalised e-mail (email_norm). Cases, stacking and minAmount work per debtor
-- (src/pipeline/handover-check.ts; the key: src/ledger/debtor-key.ts).
CREATE TABLE debtors (
  id           text PRIMARY KEY,
  merchant_id  text NOT NULL,
  external_ref text,
  email_norm   text,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX debtors_external_ref ON debtors (merchant_id, external_ref) WHERE external_ref IS NOT NULL;
CREATE UNIQUE INDEX debtors_email_norm ON debtors (merchant_id, email_norm) WHERE email_norm IS NOT NULL;

-- The merchant's own id for this PSP customer, as last seen in the PSP's metadata.
ALTER TABLE customers ADD COLUMN merchant_ref text;
ALTER TABLE customers ADD COLUMN debtor_id text REFERENCES debtors(id);
ALTER TABLE cases ADD COLUMN debtor_id text REFERENCES debtors(id);

-- Existing data. The merchant's id, where the stored events carry it under the default keys
-- (customer_id, merchantCustomerId): Stripe (the expanded customer's metadata, the subscription's
-- metadata copied onto the invoice, the invoice's or payment's own), GoCardless (the resource's
-- metadata in the event), Adyen (`metadata.<key>` in additionalData). The newest event wins.
UPDATE customers c SET merchant_ref = found.ref
FROM (
  SELECT DISTINCT ON (customer_id) customer_id, ref
  FROM (
    SELECT x.customer_id, e.id AS event_id, NULLIF(btrim(COALESCE(
        e.payload #>> '{data,object,customer,metadata,customer_id}',
        e.payload #>> '{data,object,customer,metadata,merchantCustomerId}',
        e.payload #>> '{data,object,parent,subscription_details,metadata,customer_id}',
        e.payload #>> '{data,object,parent,subscription_details,metadata,merchantCustomerId}',
        e.payload #>> '{data,object,subscription_details,metadata,customer_id}',
        e.payload #>> '{data,object,subscription_details,metadata,merchantCustomerId}',
        e.payload #>> '{data,object,metadata,customer_id}',
        e.payload #>> '{data,object,metadata,merchantCustomerId}',
        e.payload #>> '{resource_metadata,customer_id}',
        e.payload #>> '{resource_metadata,merchantCustomerId}',
        e.payload #>> '{NotificationRequestItem,additionalData,metadata.customer_id}',
        e.payload #>> '{NotificationRequestItem,additionalData,metadata.merchantCustomerId}'
      )), '') AS ref
    FROM exchanges x JOIN inbound_events e ON e.id = x.inbound_event_id
    WHERE x.customer_id IS NOT NULL AND x.merchant_id = e.merchant_id
  ) seen
  WHERE ref IS NOT NULL
  ORDER BY customer_id, event_id DESC
) found
WHERE found.customer_id = c.id;

-- Adyen's shopperReference is by definition the merchant's own id for the shopper (the customer's
-- ref, unless it is the order stand-in `order:<merchantReference>`).
UPDATE customers SET merchant_ref = provider_ref
WHERE provider = 'adyen' AND merchant_ref IS NULL AND provider_ref NOT LIKE 'order:%';

-- One debtor per merchant id (customers sharing it are merged into one debtor), one per other
-- customer. Deterministic ids, so the statements below can find them again.
INSERT INTO debtors (id, merchant_id, external_ref, created_at)
SELECT 'dbt_' || substr(md5(merchant_id || ':' || merchant_ref), 1, 20), merchant_id, merchant_ref, min(created_at)
FROM customers WHERE merchant_ref IS NOT NULL
GROUP BY merchant_id, merchant_ref;

INSERT INTO debtors (id, merchant_id, created_at)
SELECT 'dbt_' || substr(md5(id), 1, 20), merchant_id, created_at
FROM customers WHERE merchant_ref IS NULL;

UPDATE customers SET debtor_id = CASE
  WHEN merchant_ref IS NOT NULL THEN 'dbt_' || substr(md5(merchant_id || ':' || merchant_ref), 1, 20)
  ELSE 'dbt_' || substr(md5(id), 1, 20) END;

UPDATE cases k SET debtor_id = c.debtor_id FROM customers c WHERE c.id = k.customer_id;

ALTER TABLE customers ALTER COLUMN debtor_id SET NOT NULL;
ALTER TABLE cases ALTER COLUMN debtor_id SET NOT NULL;

-- A row inserted without a debtor (fixtures, seeds, any older insert path) still gets one: a
-- customer its own, a case its customer's. The hub's own inserts always name it
-- (src/ledger/payment-ledger.ts, src/pipeline/handover-check.ts). One line per function body:
-- src/store/migrate.ts splits statements at a semicolon that ends a line.
CREATE FUNCTION customers_default_debtor() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.debtor_id IS NULL THEN NEW.debtor_id := 'dbt_' || substr(md5(NEW.id), 1, 20); INSERT INTO debtors (id, merchant_id) VALUES (NEW.debtor_id, NEW.merchant_id) ON CONFLICT (id) DO NOTHING; END IF; RETURN NEW; END $$;
CREATE TRIGGER customers_default_debtor BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION customers_default_debtor();
CREATE FUNCTION cases_default_debtor() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.debtor_id IS NULL THEN SELECT debtor_id INTO NEW.debtor_id FROM customers WHERE id = NEW.customer_id; END IF; RETURN NEW; END $$;
CREATE TRIGGER cases_default_debtor BEFORE INSERT ON cases FOR EACH ROW EXECUTE FUNCTION cases_default_debtor();

CREATE INDEX customers_debtor ON customers (debtor_id);
CREATE INDEX cases_debtor ON cases (debtor_id, partner_id, currency);
