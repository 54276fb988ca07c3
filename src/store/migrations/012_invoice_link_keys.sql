-- Issue 12, hole 2: the merchant's invoice, not the PSP's payment. A Mollie payment that failed,
-- expired or was canceled is final; a debtor who pays later pays through a new `tr_…` payment.
-- Each invoice keeps the names a later payment may use for it (the merchant's invoice id in
-- metadata, the subscription and its period, the customer and amount — one row per rule), so that
-- payment finds the open invoice (src/ledger/invoice-link.ts). Linked only on one match: two
-- open invoices under the same key are never guessed between.
CREATE TABLE invoice_link_keys (
  merchant_id text NOT NULL,
  provider    text NOT NULL,
  rule        text NOT NULL,
  link_key    text NOT NULL,
  invoice_id  text NOT NULL REFERENCES invoices(id),
  PRIMARY KEY (merchant_id, provider, rule, link_key, invoice_id)
);
CREATE INDEX invoice_link_keys_invoice ON invoice_link_keys (invoice_id);
