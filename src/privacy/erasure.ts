/**
 * Erasure of one debtor's personal data at the merchant's request (GDPR art. 17), issue 13 item 6.
 * The customer's name, e-mail, phone and address are cleared, its screening hashes deleted
 * (src/screening/store.ts: screening finds nothing of it afterwards), and the raw PSP payloads, sync-log
 * bodies and agency notes that concern the customer are purged as the retention purge would
 * (src/privacy/retention.ts). The accounting trail (invoices, claims, cases, amounts, the
 * timeline) stays: the merchant must keep it (bookkeeping duties), and it holds no contact data.
 * The debtor's derived payment-behaviour profile goes too: its stored flags (debtor_profiles,
 * src/profile/flags-sync.ts) are deleted, and a debtor with an erased customer is profiled no more
 * (no profile in the API, no customer.flags_changed; src/profile/profile.ts debtorErased).
 *
 * Refused (legal hold, art. 17(3)(b) and (e)) while the customer still owes an unpaid invoice the
 * hub is pursuing — failed and not yet resolved, waiting for hand-over, or with a partner — since
 * the data is needed to establish and exercise that claim. Every call, done or refused, is in the
 * sync log and the log.
 */
import type { Sql } from '../store/db';
import type { CustomerRow, InvoiceRow } from '../ledger/rows';
import { TERMINAL_STATUSES } from '../domain/types';
import { addHistory } from '../ledger/history';
import { recordExchanges } from '../exchanges/exchange-log';
import { purgedPayload } from './retention';
import { eraseIdentifierHashes } from '../screening/store';

export interface LegalHold {
  invoiceId: string;
  status: string;
  why: string;
}

/** Statuses in which an unpaid invoice is still being pursued (by the PSP's retries, the hub or a partner). */
const PURSUED = (status: string, failed: boolean): string | null => {
  if (status === 'pending_handover') return 'waiting for hand-over to a collection partner';
  if (status === 'open') return failed ? 'payment failed and not yet resolved' : null;
  if (['recovered', 'settled', 'voided', 'disputed'].includes(status)) return null;
  if ((TERMINAL_STATUSES as readonly string[]).includes(status)) return null;
  return `with a collection partner (${status})`;
};

/** Which of the customer's invoices keep the data under a legal hold; empty: it may be erased. */
export function legalHolds(invoices: Pick<InvoiceRow, 'id' | 'status' | 'failure_count'>[]): LegalHold[] {
  const out: LegalHold[] = [];
  for (const inv of invoices) {
    const why = PURSUED(inv.status, Number(inv.failure_count) > 0);
    if (why) out.push({ invoiceId: inv.id, status: inv.status, why });
  }
  return out;
}

export type ErasureOutcome =
  | { erased: true; customerId: string; purged: { inboundEvents: number; exchanges: number; partnerUpdates: number; identifierHashes: number } }
  | { erased: false; customerId: string; holds: LegalHold[] };

/** Inside the caller's transaction: erase, or report the holds. The customer row is locked. */
export async function eraseCustomer(sql: Sql, customer: CustomerRow, now: Date, requestedBy: string): Promise<ErasureOutcome> {
  await sql.query(`SELECT id FROM customers WHERE id = $1 FOR UPDATE`, [customer.id]);
  const invoices = (await sql.query<InvoiceRow>(`SELECT id, status, failure_count FROM invoices WHERE customer_id = $1`, [customer.id])).rows;
  const holds = legalHolds(invoices);
  const base = { merchantId: customer.merchant_id, direction: 'in' as const, party: requestedBy, operation: 'POST /v1/customers/:ref/erase', customerId: customer.id, at: now };
  if (holds.length) {
    await recordExchanges(sql, [{ ...base, outcome: 'rejected', httpStatus: 409, summary: `erasure refused (legal hold): ${holds.map((h) => `${h.invoiceId} ${h.why}`).join('; ')}` }]);
    return { erased: false, customerId: customer.id, holds };
  }
  const invoiceIds = invoices.map((i) => i.id);
  const caseIds = (await sql.query<{ id: string }>(`SELECT id FROM cases WHERE customer_id = $1`, [customer.id])).rows.map((r) => r.id);
  // The derived profile: the flag set last sent for the debtor (issue 17, migration 018).
  await sql.query(`DELETE FROM debtor_profiles WHERE merchant_id = $1 AND debtor_id = (SELECT debtor_id FROM customers WHERE id = $2)`, [customer.merchant_id, customer.id]);
  await sql.query(`UPDATE customers SET name = NULL, email = NULL, phone = NULL, address = NULL, erased_at = $2, updated_at = $2 WHERE id = $1`, [customer.id, now]);
  // Screening's salted hashes of the customer's e-mail, customer id, IBAN and card (src/screening/store.ts):
  // after erasure a screening finds nothing of this customer, and an erased customer gets no new ones.
  const identifierHashes = await eraseIdentifierHashes(sql, customer.id);
  // Raw PSP events of this customer: the ones its sync-log entries point at.
  const events = await sql.query(
    `UPDATE inbound_events SET payload = $4::jsonb, purged_at = $5
      WHERE id IN (SELECT inbound_event_id FROM exchanges
                    WHERE inbound_event_id IS NOT NULL AND (customer_id = $1 OR invoice_id = ANY($2::text[]) OR case_id = ANY($3::text[])))`,
    [customer.id, invoiceIds, caseIds, JSON.stringify(purgedPayload(now, 'erasure')), now],
  );
  const exchanges = await sql.query(
    `UPDATE exchanges SET request = NULL, response = NULL, purged_at = $4
      WHERE customer_id = $1 OR invoice_id = ANY($2::text[]) OR case_id = ANY($3::text[])`,
    [customer.id, invoiceIds, caseIds, now],
  );
  const notes = await sql.query(
    `UPDATE partner_updates SET payload = payload - 'note', purged_at = $2 WHERE payload->>'caseId' = ANY($1::text[]) OR payload->>'caseReference' = ANY($1::text[])`,
    [caseIds, now],
  );
  const purged = { inboundEvents: events.rowCount ?? 0, exchanges: exchanges.rowCount ?? 0, partnerUpdates: notes.rowCount ?? 0, identifierHashes };
  await addHistory(sql, { merchantId: customer.merchant_id, entity: 'customer', entityId: customer.id, status: 'personal_data_erased', reason: null, source: requestedBy, occurredAt: now, detail: { gdpr: 'art. 17', ...purged } }, now);
  await recordExchanges(sql, [{ ...base, outcome: 'ok', httpStatus: 200, summary: `personal data erased (GDPR art. 17): ${purged.inboundEvents} PSP events, ${purged.exchanges} sync-log bodies, ${purged.partnerUpdates} agency notes purged, ${purged.identifierHashes} screening hashes deleted` }]);
  return { erased: true, customerId: customer.id, purged };
}
