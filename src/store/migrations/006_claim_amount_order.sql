-- What a claim collected is ordered by the claim's own updates only: a case-level update (which
-- carries the whole case's total) stamps the claim's status, not its amount, so a claim-level
-- amount that arrives after the case closed still counts if it is the claim's newest.
ALTER TABLE claims ADD COLUMN amount_update_at timestamptz;
ALTER TABLE claims ADD COLUMN amount_update_seq bigint;
