/**
 * The SQL edge of debtor identity (issue 12, hole 3): links a PSP customer to the merchant-level
 * debtor its key names (src/ledger/debtor-key.ts decides; this file reads and writes), and locks
 * that debtor, so the events and hand-over checks of one person run one at a time whichever PSP
 * they come from. Lock order everywhere: customer, then debtor, then invoices/claims/cases.
 */
import { createHash } from 'node:crypto';
import type { Sql } from '../store/db';
import type { Policy } from '../config/schema';
import type { CustomerInfo } from '../domain/types';
import { decideDebtorLink, resolveDebtorKey, type DebtorKey } from './debtor-key';
import { addHistory } from './history';
import { forgetCustomers, takeCustomer, type CurrentCustomer } from './prefetch';
import { newId } from '../domain/ids';

export interface DebtorLinkResult {
  debtorId: string;
  /** The debtor the customer was linked to before, when this event moved it. */
  movedFrom: string | null;
  key: DebtorKey['kind'];
  /** What the customer row held before this event (null: a customer seen for the first time). */
  known: { email: string | null; merchantRef: string | null } | null;
  /**
   * The debtor is a new customer's own and is not written yet: the caller creates it in the
   * customer's own upsert (one statement for both, the pipeline's common case; BENCHMARKS.md).
   */
  createWithCustomer?: { id: string; merchantId: string; at: Date };
}

/**
 * A customer's own debtor has an id derived from the customer's PSP key, so two transactions
 * that see a new customer at once create the same debtor (the second insert does nothing).
 */
export function ownDebtorId(merchantId: string, provider: string, providerRef: string): string {
  const h = createHash('sha256').update(`${merchantId}\u0000${provider}\u0000${providerRef}`).digest();
  const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
  let s = '';
  for (let i = 0; i < 20; i++) s += ALPHABET[h[i] & 31];
  return `dbt_${s}`;
}

/** A customer's own debtor, created or (changing nothing) locked: $1 id, $2 merchant, $3 created at. */
export const DEBTOR_UPSERT = `INSERT INTO debtors (id, merchant_id, created_at) VALUES ($1,$2,$3) ON CONFLICT (id) DO UPDATE SET merchant_id = debtors.merchant_id`;

/**
 * Find the debtor for the customer `c` of this event (creating, adopting or moving as
 * decideDebtorLink says) and lock it. Runs before the customer's upsert, which stores the id.
 */
export async function linkDebtor(
  sql: Sql,
  merchantId: string,
  provider: string,
  c: CustomerInfo,
  policy: Pick<Policy, 'debtorIdentity'>,
  now: Date,
): Promise<DebtorLinkResult> {
  // In a batch the customer was read (and locked) with the batch's others (src/ledger/prefetch.ts).
  const prefetched = takeCustomer(sql, merchantId, provider, c.ref);
  const current = prefetched !== undefined ? (prefetched ?? undefined) : (await sql.query<CurrentCustomer>(
    `SELECT c.id, c.debtor_id, c.merchant_ref, c.email, d.external_ref, d.email_norm
       FROM customers c JOIN debtors d ON d.id = c.debtor_id
      WHERE c.merchant_id = $1 AND c.provider = $2 AND c.provider_ref = $3 FOR UPDATE OF c, d`,
    [merchantId, provider, c.ref],
  )).rows[0];
  const key = resolveDebtorKey({ merchantRef: c.merchantRef ?? current?.merchant_ref, email: c.email ?? current?.email }, policy);
  const column = key.kind === 'merchant_ref' ? 'external_ref' : 'email_norm';
  const holder = key.kind === 'psp_customer'
    ? undefined
    : (await sql.query<{ id: string }>(`SELECT id FROM debtors WHERE merchant_id = $1 AND ${column} = $2`, [merchantId, key.value])).rows[0];
  const link = decideDebtorLink(
    key,
    current ? { id: current.debtor_id, externalRef: current.external_ref, emailNorm: current.email_norm } : null,
    !!holder && holder.id !== current?.debtor_id,
  );

  let debtorId: string;
  /** Whether a statement below has locked the debtor's row already (an upsert that wrote it). */
  let locked = false;
  if (link.action === 'keep') debtorId = current!.debtor_id;
  else if (link.action === 'adopt') {
    debtorId = current!.debtor_id;
    await sql.query(`UPDATE debtors SET ${column} = $2 WHERE id = $1`, [debtorId, (key as { value: string }).value]);
  } else if (link.action === 'new_own') {
    debtorId = ownDebtorId(merchantId, provider, c.ref);
    if (!current) {
      // A customer seen for the first time: its debtor is written (and locked) by the customer's
      // upsert, in the same statement (upsertCustomer); nothing below needs the row before that.
      return { debtorId, movedFrom: null, key: key.kind, known: null, createWithCustomer: { id: debtorId, merchantId, at: now } };
    }
    // DO UPDATE (changing nothing) rather than DO NOTHING: the row is locked whether it was new or not.
    await sql.query(DEBTOR_UPSERT, [debtorId, merchantId, now]);
    locked = true;
  } else {
    const value = (key as { value: string }).value;
    locked = !holder;
    debtorId = holder?.id ?? (await sql.query<{ id: string }>(
      `INSERT INTO debtors (id, merchant_id, ${column}, created_at) VALUES ($1,$2,$3,$4)
       ON CONFLICT (merchant_id, ${column}) WHERE ${column} IS NOT NULL DO UPDATE SET ${column} = EXCLUDED.${column}
       RETURNING id`,
      [newId('dbt'), merchantId, value, now],
    )).rows[0].id;
  }
  // The current debtor was locked with the customer; any other one is locked now (one round trip
  // saved on every event of a known customer, the pipeline's common case; BENCHMARKS.md).
  if (debtorId !== current?.debtor_id && !locked) await sql.query(`SELECT id FROM debtors WHERE id = $1 FOR UPDATE`, [debtorId]);

  const movedFrom = current && current.debtor_id !== debtorId ? current.debtor_id : null;
  // A debtor's keys changed, or a customer moved: what the batch read of other customers may be stale.
  if (link.action === 'adopt' || movedFrom) forgetCustomers(sql);
  if (current && movedFrom) {
    // The customer's cases follow it: a case belongs to the debtor whose invoices it holds.
    await sql.query(`UPDATE cases SET debtor_id = $2, updated_at = $3 WHERE customer_id = $1 AND debtor_id = $4`, [current.id, debtorId, now, movedFrom]);
  }
  if (current && (movedFrom || link.action === 'adopt')) {
    await addHistory(sql, {
      merchantId, entity: 'customer', entityId: current.id, status: 'debtor_linked', source: provider, occurredAt: now,
      detail: { debtorId, key: key.kind, ...(movedFrom ? { previousDebtorId: movedFrom } : {}) },
    }, now);
  }
  return { debtorId, movedFrom, key: key.kind, known: current ? { email: current.email, merchantRef: current.merchant_ref } : null };
}
