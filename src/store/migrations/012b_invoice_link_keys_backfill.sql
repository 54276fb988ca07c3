-- Issue 12, hole 2: the Mollie invoices recorded before migration 012 get the link keys a later
-- payment looks them up by (connectors/psp/mollie/invoice-link-keys.ts), so a debtor of an invoice
-- already in collection who pays through a new `tr_…` is reported to the agency too.
--  - subscriptionPeriod: the subscription and the month (Europe/Amsterdam) Mollie created the
--    payment in — `issued_at` is the payment's createdAt (normalize.ts);
--  - metadata.invoiceId: the merchant's invoice reference the hub read from the metadata
--    (`number`: invoiceNumber, invoiceId, … — normalize.ts), under the default rule's name;
--  - customerAndAmount: the Mollie customer and the amount (found only when a merchant opts in).
-- A key that fits two open invoices links neither (src/ledger/invoice-link.ts), as for new ones.
INSERT INTO invoice_link_keys (merchant_id, provider, rule, link_key, invoice_id)
SELECT merchant_id, provider, 'subscriptionPeriod', subscription_ref || '|' || to_char(issued_at AT TIME ZONE 'Europe/Amsterdam', 'YYYY-MM'), id
  FROM invoices WHERE provider = 'mollie' AND subscription_ref IS NOT NULL AND issued_at IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO invoice_link_keys (merchant_id, provider, rule, link_key, invoice_id)
SELECT merchant_id, provider, 'metadata.invoiceId', number, id
  FROM invoices WHERE provider = 'mollie' AND number IS NOT NULL AND number <> ''
ON CONFLICT DO NOTHING;
INSERT INTO invoice_link_keys (merchant_id, provider, rule, link_key, invoice_id)
SELECT i.merchant_id, i.provider, 'customerAndAmount', c.provider_ref || '|' || i.currency || '|' || i.amount_due, i.id
  FROM invoices i JOIN customers c ON c.id = i.customer_id
 WHERE i.provider = 'mollie'
ON CONFLICT DO NOTHING;
