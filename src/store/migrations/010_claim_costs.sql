-- Issue 12, holes 4 and 6: statutory collection costs per claim. Each claim carries its own
-- costs (0 with the reason when no letter is evidenced), the VAT part when the merchant cannot
-- deduct VAT, and their basis; the agency's add-claim call sends them (src/delivery/agency-delivery.ts).
-- cases.collection_costs stays the sum of its claims' costs. The Wki cap for small recurring
-- claims reads what a debtor's claims were charged in the last six months (src/pipeline/claim-costs.ts).
ALTER TABLE claims ADD COLUMN collection_costs bigint;
ALTER TABLE claims ADD COLUMN collection_costs_vat bigint NOT NULL DEFAULT 0;
ALTER TABLE claims ADD COLUMN collection_costs_basis text;
