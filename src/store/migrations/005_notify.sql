-- Notifications from status_history (src/notify/scanner.ts): merchant webhooks and PSP write-back.
--
-- The scanner reads history rows past a stored cursor. Row ids come from a sequence, and a
-- transaction can commit a lower id after a higher one is already visible, so a cursor on the id
-- alone could step over a row that commits late. Each row therefore records the transaction that
-- wrote it; the scanner reads only rows of transactions older than every one still running
-- (pg_snapshot_xmin), in (txid, id) order, so nothing can commit behind the cursor.
ALTER TABLE status_history ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX status_history_txid ON status_history (txid, id);

CREATE TABLE notify_cursors (
  name        text PRIMARY KEY,
  last_txid   xid8 NOT NULL,
  last_id     bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Start after what is already there: turning notifications on does not replay the past.
INSERT INTO notify_cursors (name, last_txid, last_id)
  SELECT 'status_history', COALESCE(MAX(txid), '0'::xid8), COALESCE(MAX(id), 0) FROM status_history;

-- A merchant endpoint that answered 410 Gone gets nothing more until its URL changes or the
-- merchant retries the delivery that was refused (Standard Webhooks: 410 disables the endpoint).
CREATE TABLE merchant_webhook_endpoints (
  merchant_id  text NOT NULL,
  url          text NOT NULL,
  disabled_at  timestamptz NOT NULL,
  reason       text,
  PRIMARY KEY (merchant_id, url)
);
