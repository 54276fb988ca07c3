-- Money the debtor paid twice (through the PSP and to the agency) and is owed back (issue 12, hole 1):
-- PSP-paid + agency-collected beyond what was due. Written by the ledger on either side
-- (src/ledger/payment-decision.ts) together with a status_history row 'owed_back'.
ALTER TABLE invoices ADD COLUMN amount_owed_back bigint NOT NULL DEFAULT 0;
-- Invoices booked "paid twice" before this column existed carry both amounts: the excess is owed back.
UPDATE invoices SET amount_owed_back = amount_paid + amount_collected - amount_due
 WHERE amount_collected > 0 AND amount_paid > 0 AND amount_paid + amount_collected > amount_due;
