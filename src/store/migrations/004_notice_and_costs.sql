-- Country rules (issue 4): the date the merchant reports for the pre-hand-over letter of an
-- invoice, and the statutory collection costs computed for a case with their basis.
ALTER TABLE invoices ADD COLUMN reminder_sent_at timestamptz;
ALTER TABLE cases ADD COLUMN collection_costs bigint;
ALTER TABLE cases ADD COLUMN collection_costs_basis text;
