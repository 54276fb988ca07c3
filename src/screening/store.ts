/**
 * The SQL edge of screening (issue 17, requirement 3): the salted hashes of the identifiers the hub
 * learned of each customer (table identifier_hashes, migration 019), written where the ledger
 * upserts the customer and in its transaction, deleted with the customer's personal data, and
 * looked up for one merchant only. The plain identifiers never reach this table
 * (src/screening/identifiers.ts hashes them first).
 */
import type { Database, Sql } from '../store/db';
import { flushHeld, holdBack } from '../store/deferred';
import type { PaymentEvent } from '../domain/types';
import { identifiersOf, normaliseIdentifier, type Identifier, type IdentifierHasher, type IdentifierKind } from './identifiers';

/** The customer row as far as its hashes need it. */
export interface HashedCustomer {
  id: string;
  merchant_id: string;
  debtor_id: string;
  erased_at?: Date | string | null;
}

interface HashRow {
  merchantId: string;
  debtorId: string;
  customerId: string;
  kind: string;
  hash: string;
  at: Date;
}

async function writeHashes(sql: Sql, rows: HashRow[]): Promise<void> {
  await sql.query(
    `INSERT INTO identifier_hashes (merchant_id, debtor_id, customer_id, kind, hash, created_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
     ON CONFLICT (customer_id, kind, hash) DO NOTHING`,
    [rows.map((r) => r.merchantId), rows.map((r) => r.debtorId), rows.map((r) => r.customerId), rows.map((r) => r.kind), rows.map((r) => r.hash), rows.map((r) => r.at)],
  );
}

async function insertHashes(sql: Sql, hasher: IdentifierHasher, customer: HashedCustomer, ids: Identifier[], now: Date): Promise<void> {
  if (!ids.length) return;
  const rows = ids.map((i) => ({ merchantId: customer.merchant_id, debtorId: customer.debtor_id, customerId: customer.id, kind: i.kind, hash: hasher.hash(customer.merchant_id, i), at: now }));
  // In a batch: with the batch's others, at its end (src/store/deferred.ts); a move to another
  // debtor below writes what is held first, so the held rows follow the customer too.
  if (holdBack(sql, 'identifier_hashes', rows, writeHashes)) return;
  await writeHashes(sql, rows);
}

/**
 * After the customer's upsert, in its transaction: hash what this event teaches about the customer.
 * An e-mail or merchant id the customer row already held is hashed already (when it was learned,
 * or by the start-up backfill), so the common event of a known customer costs no statement; an
 * IBAN or card fingerprint is never kept in plain, so it is written whenever an event carries one
 * (a no-op when known). When the event moved the customer to another debtor, its hashes follow.
 * An erased customer gets none: it asked to be forgotten (src/privacy/erasure.ts).
 */
export async function learnIdentifiers(
  sql: Sql,
  hasher: IdentifierHasher,
  customer: HashedCustomer,
  ev: Pick<PaymentEvent, 'customer' | 'payment'>,
  link: { movedFrom: string | null; known: { email: string | null; merchantRef: string | null } | null },
  now: Date,
): Promise<void> {
  if (customer.erased_at) return;
  if (link.movedFrom) await flushHeld(sql, 'identifier_hashes');
  if (link.movedFrom) await sql.query(`UPDATE identifier_hashes SET debtor_id = $2 WHERE customer_id = $1 AND debtor_id <> $2`, [customer.id, customer.debtor_id]);
  const known = link.known;
  const fresh = identifiersOf(ev).filter((i) => {
    if (!known) return true;
    if (i.kind === 'email') return normaliseIdentifier('email', known.email) !== i.value;
    if (i.kind === 'merchant_ref') return normaliseIdentifier('merchant_ref', known.merchantRef) !== i.value;
    return true;
  });
  await insertHashes(sql, hasher, customer, fresh, now);
}

/** Erasure (GDPR art. 17): every hash of the customer goes; returns how many. */
export async function eraseIdentifierHashes(sql: Sql, customerId: string): Promise<number> {
  const r = await sql.query(`DELETE FROM identifier_hashes WHERE customer_id = $1`, [customerId]);
  return r.rowCount ?? 0;
}

export interface HashMatch {
  debtorId: string;
  customerId: string;
  provider: string;
  providerRef: string;
  kind: IdentifierKind;
  hash: string;
}

/**
 * The merchant's customers holding any of these hashes. Only this merchant's rows are read (and the
 * merchant id is inside every hash, so another merchant's could not match anyway); an erased
 * customer never matches. The debtor is the customer's current one.
 */
export async function findHashMatches(sql: Sql, merchantId: string, hashes: { kind: IdentifierKind; hash: string }[]): Promise<HashMatch[]> {
  if (!hashes.length) return [];
  const r = await sql.query<{ debtor_id: string; customer_id: string; provider: string; provider_ref: string; kind: IdentifierKind; hash: string }>(
    `SELECT c.debtor_id, c.id AS customer_id, c.provider, c.provider_ref, h.kind, h.hash
       FROM unnest($2::text[], $3::text[]) AS q(kind, hash)
       JOIN identifier_hashes h ON h.merchant_id = $1 AND h.kind = q.kind AND h.hash = q.hash
       JOIN customers c ON c.id = h.customer_id AND c.merchant_id = $1 AND c.erased_at IS NULL
      ORDER BY c.debtor_id, c.created_at, c.id, h.kind`,
    [merchantId, hashes.map((h) => h.kind), hashes.map((h) => h.hash)],
  );
  return r.rows.map((x) => ({ debtorId: x.debtor_id, customerId: x.customer_id, provider: x.provider, providerRef: x.provider_ref, kind: x.kind, hash: x.hash }));
}

/**
 * Customers the hub knew before identifier hashes existed get theirs from the e-mail and merchant
 * id their rows hold: at a worker's start, in batches. A customer with a hash of either kind is
 * done; IBANs and card fingerprints come as the PSPs send them again. Idempotent, so processes
 * starting together do no harm. A batch's insert checks its customers' keys while events lock
 * customers too, so PostgreSQL may end one of them as a deadlock: the batch is tried again
 * (`retries`, a second apart) rather than left for the next start, since an event of a customer
 * whose e-mail did not change writes no hash (learnIdentifiers). Returns how many customers it hashed.
 */
export async function backfillIdentifierHashes(db: Database, hasher: IdentifierHasher, now: Date, batch = 200, retries = 5): Promise<number> {
  let after = '';
  let hashed = 0;
  for (;;) {
    const rows = (await db.query<{ id: string; merchant_id: string; email: string | null; merchant_ref: string | null }>(
      `SELECT c.id, c.merchant_id, c.email, c.merchant_ref FROM customers c
        WHERE c.id > $1 AND c.erased_at IS NULL AND (c.email IS NOT NULL OR c.merchant_ref IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM identifier_hashes h WHERE h.customer_id = c.id AND h.kind IN ('email', 'merchant_ref'))
        ORDER BY c.id LIMIT $2`,
      [after, batch],
    )).rows;
    if (!rows.length) return hashed;
    after = rows[rows.length - 1].id;
    const customerIds: string[] = [];
    const kinds: string[] = [];
    const hashes: string[] = [];
    for (const c of rows) {
      const ids = identifiersOf({ customer: { ref: c.id, email: c.email ?? undefined, merchantRef: c.merchant_ref ?? undefined } });
      for (const i of ids) {
        customerIds.push(c.id);
        kinds.push(i.kind);
        hashes.push(hasher.hash(c.merchant_id, i));
      }
      if (ids.length) hashed++;
    }
    for (let attempt = 1; customerIds.length; attempt++) {
      try {
        // The debtor and the erasure are read as the rows are written: a customer moved or erased meanwhile is taken as it is now.
        await db.query(
          `INSERT INTO identifier_hashes (merchant_id, debtor_id, customer_id, kind, hash, created_at)
           SELECT c.merchant_id, c.debtor_id, c.id, x.kind, x.hash, $4
             FROM unnest($1::text[], $2::text[], $3::text[]) AS x(customer_id, kind, hash)
             JOIN customers c ON c.id = x.customer_id AND c.erased_at IS NULL
           ON CONFLICT (customer_id, kind, hash) DO NOTHING`,
          [customerIds, kinds, hashes, now],
        );
        break;
      } catch (err) {
        if (attempt > retries) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (rows.length < batch) return hashed;
  }
}
