/**
 * Screening's identifier hashes in the store (issue 17, requirement 3; src/screening/store.ts,
 * migration 019), through the ledger's real customer upsert, on PGlite and PostgreSQL: written in
 * the upsert's transaction (a rolled-back event leaves none), only hashes, not written again for an
 * identifier the customer already had, following the customer to another debtor, never for an
 * erased customer, looked up for one merchant only; and the start-up backfill of customers known
 * from before the table existed.
 */
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import type { MerchantSettings } from '../../src/context';
import type { CustomerInfo, PaymentEvent, PaymentInfo } from '../../src/domain/types';
import { upsertCustomer } from '../../src/ledger/payment-ledger';
import { backfillIdentifierHashes, findHashMatches } from '../../src/screening/store';
import { DB_BACKENDS, dbSuite } from './db-backends';
import { testIdentifierHasher } from '../support/secrets';

const merchant = (id: string) => ({ id, policy: { defaultDebtorType: 'consumer', debtorIdentity: { metadataKeys: ['customer_id'], matchEmail: false } } }) as unknown as MerchantSettings;
const hasher = testIdentifierHasher();

let seq = 0;
const event = (merchantId: string, provider: string, customer: CustomerInfo, payment?: PaymentInfo): PaymentEvent => ({
  merchantId, provider, providerEventId: `ev${++seq}`, providerEventType: 'x', kind: 'ignored', occurredAt: new Date().toISOString(), customer, payment,
});

describe.each(DB_BACKENDS)('identifier hashes ($name)', (backend) => {
  let db: Database;
  const { maybe } = dbSuite(backend, async (opened) => {
    db = opened;
    await migrate(db);
  });

  const upsert = (m: MerchantSettings, provider: string, c: CustomerInfo, p?: PaymentInfo) => db.tx((sql) => upsertCustomer(sql, m, event(m.id, provider, c, p), new Date(), hasher));
  const hashesOf = async (customerId: string) =>
    (await db.query<{ kind: string; hash: string; debtor_id: string; merchant_id: string }>(`SELECT kind, hash, debtor_id, merchant_id FROM identifier_hashes WHERE customer_id = $1 ORDER BY kind`, [customerId])).rows;
  const match = (merchantId: string, kind: 'email' | 'merchant_ref' | 'iban' | 'card_fingerprint', value: string) =>
    db.tx((sql) => findHashMatches(sql, merchantId, [{ kind, hash: hasher.hash(merchantId, { kind, value }) }]));

  maybe('the upsert writes the hashes of what the event teaches, in its transaction, and only hashes', async () => {
    const m = merchant('m_write');
    const c = await upsert(m, 'mollie', { ref: 'cst_w', email: ' Jan@Example.NL', merchantRef: 'CRM-1' }, { ref: 'tr_w', method: 'sepa_debit', iban: 'NL91ABNA0417164300' });
    const rows = await hashesOf(c!.id);
    expect(rows.map((r) => r.kind)).toEqual(['email', 'iban', 'merchant_ref']);
    for (const r of rows) expect(r).toMatchObject({ hash: expect.stringMatching(/^[0-9a-f]{64}$/), debtor_id: c!.debtor_id, merchant_id: 'm_write' });
    expect(JSON.stringify(rows)).not.toMatch(/jan|example|NL91|CRM-1/i);
    expect((await match('m_write', 'email', 'jan@example.nl')).map((x) => x.customerId)).toEqual([c!.id]);
    // Another merchant's lookup of the same e-mail finds nothing.
    expect(await match('m_other', 'email', 'jan@example.nl')).toEqual([]);

    // A transaction that fails after the upsert leaves no hash behind.
    await expect(db.tx(async (sql) => {
      await upsertCustomer(sql, m, event(m.id, 'stripe', { ref: 'cus_rollback', email: 'gone@example.nl' }), new Date(), hasher);
      throw new Error('the event failed later');
    })).rejects.toThrow('the event failed later');
    expect(await match('m_write', 'email', 'gone@example.nl')).toEqual([]);
  });

  maybe('a known identifier is not written again; a new e-mail is added, the old one kept; a card fingerprint each time (a no-op when known)', async () => {
    const m = merchant('m_again');
    const c = await upsert(m, 'stripe', { ref: 'cus_a', email: 'a@example.nl' });
    const written = (await db.query<{ created_at: Date }>(`SELECT created_at FROM identifier_hashes WHERE customer_id = $1`, [c!.id])).rows[0].created_at;
    await upsert(m, 'stripe', { ref: 'cus_a', email: 'A@example.nl' }, { ref: 'pi_1', method: 'card', cardFingerprint: 'fpA' });
    await upsert(m, 'stripe', { ref: 'cus_a', email: 'new@example.nl' }, { ref: 'pi_2', method: 'card', cardFingerprint: 'fpA' });
    expect((await hashesOf(c!.id)).map((r) => r.kind)).toEqual(['card_fingerprint', 'email', 'email']);
    expect((await db.query<{ created_at: Date }>(`SELECT created_at FROM identifier_hashes WHERE customer_id = $1 AND kind = 'email' ORDER BY created_at LIMIT 1`, [c!.id])).rows[0].created_at).toEqual(written);
    expect(await match('m_again', 'email', 'a@example.nl')).toHaveLength(1);
    expect(await match('m_again', 'email', 'new@example.nl')).toHaveLength(1);
  });

  maybe("the hashes follow the customer to another debtor; an erased customer gets none", async () => {
    const m = merchant('m_move');
    const keyed = await upsert(m, 'stripe', { ref: 'cus_k', merchantRef: 'CRM-9' });
    const loose = await upsert(m, 'mollie', { ref: 'cst_l', email: 'l@example.nl' });
    expect(loose!.debtor_id).not.toBe(keyed!.debtor_id);
    const moved = await upsert(m, 'mollie', { ref: 'cst_l', merchantRef: 'CRM-9' });
    expect(moved!.debtor_id).toBe(keyed!.debtor_id);
    expect(new Set((await hashesOf(loose!.id)).map((r) => r.debtor_id))).toEqual(new Set([keyed!.debtor_id]));
    expect((await match('m_move', 'email', 'l@example.nl')).map((x) => x.debtorId)).toEqual([keyed!.debtor_id]);

    await db.query(`DELETE FROM identifier_hashes WHERE customer_id = $1`, [loose!.id]);
    await db.query(`UPDATE customers SET email = NULL, erased_at = now() WHERE id = $1`, [loose!.id]);
    await upsert(m, 'mollie', { ref: 'cst_l', email: 'l@example.nl' }, { ref: 'tr_l', method: 'sepa_debit', iban: 'NL91ABNA0417164300' });
    expect(await hashesOf(loose!.id)).toEqual([]);
  });

  maybe('the backfill hashes the stored e-mail and merchant id of customers without hashes, once; erased customers are left out', async () => {
    const m = merchant('m_back');
    const a = await upsert(m, 'stripe', { ref: 'cus_ba', email: 'ba@example.nl', merchantRef: 'CRM-B' });
    const b = await upsert(m, 'stripe', { ref: 'cus_bb', email: 'bb@example.nl' });
    const gone = await upsert(m, 'stripe', { ref: 'cus_bc', email: 'bc@example.nl' });
    // As before migration 019: no hashes at all.
    await db.query(`DELETE FROM identifier_hashes WHERE merchant_id = 'm_back'`);
    await db.query(`UPDATE customers SET erased_at = now() WHERE id = $1`, [gone!.id]);
    expect(await backfillIdentifierHashes(db, hasher, new Date(), 1)).toBeGreaterThanOrEqual(2);
    expect((await hashesOf(a!.id)).map((r) => r.kind)).toEqual(['email', 'merchant_ref']);
    expect((await hashesOf(b!.id)).map((r) => r.kind)).toEqual(['email']);
    expect(await hashesOf(gone!.id)).toEqual([]);
    expect((await match('m_back', 'merchant_ref', 'CRM-B')).map((x) => x.customerId)).toEqual([a!.id]);
    // Done: a second pass finds nothing to do.
    expect(await backfillIdentifierHashes(db, hasher, new Date())).toBe(0);
  });
});
