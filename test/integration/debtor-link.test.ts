/**
 * How a PSP customer is linked to its debtor, through the ledger's real upsert (src/ledger/debtors.ts
 * + upsertCustomer), on PGlite and PostgreSQL: the e-mail match only when the merchant opted in; a
 * customer first seen without a key adopts one later; a customer joining another debtor takes its
 * cases along; a customer known by the merchant's id is never moved.
 */
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import type { MerchantSettings } from '../../src/context';
import type { CustomerInfo, PaymentEvent } from '../../src/domain/types';
import { upsertCustomer } from '../../src/ledger/payment-ledger';
import { DB_BACKENDS, dbSuite } from './db-backends';
import { testIdentifierHasher } from '../support/secrets';

const merchant = (id: string, matchEmail: boolean) =>
  ({ id, policy: { defaultDebtorType: 'consumer', debtorIdentity: { metadataKeys: ['customer_id'], matchEmail } } }) as unknown as MerchantSettings;

let seq = 0;
const event = (merchantId: string, provider: string, customer: CustomerInfo): PaymentEvent => ({
  merchantId, provider, providerEventId: `ev${++seq}`, providerEventType: 'x', kind: 'ignored', occurredAt: new Date().toISOString(), customer,
});

const backends = DB_BACKENDS;

describe.each(backends)('linking PSP customers to debtors ($name)', (backend) => {
  let db: Database;
  const { maybe } = dbSuite(backend, async (opened) => {
    db = opened;
    await migrate(db);
  });

  const upsert = (m: MerchantSettings, provider: string, c: CustomerInfo) => db.tx((sql) => upsertCustomer(sql, m, event(m.id, provider, c), new Date(), testIdentifierHasher()));

  maybe('joins customers by e-mail only when the merchant opted in', async () => {
    const on = merchant('m_on', true);
    const off = merchant('m_off', false);
    const a = await upsert(on, 'stripe', { ref: 'cus_a', email: ' Jan@Example.NL' });
    const b = await upsert(on, 'mollie', { ref: 'cst_b', email: 'jan@example.nl' });
    expect(b!.debtor_id).toBe(a!.debtor_id);
    const c = await upsert(off, 'stripe', { ref: 'cus_a', email: 'jan@example.nl' });
    const d = await upsert(off, 'mollie', { ref: 'cst_b', email: 'jan@example.nl' });
    expect(d!.debtor_id).not.toBe(c!.debtor_id);
  });

  maybe("lets a customer first seen without a key adopt the merchant's id later, keeping its debtor", async () => {
    const m = merchant('m_adopt', false);
    const first = await upsert(m, 'stripe', { ref: 'cus_x' });
    const later = await upsert(m, 'stripe', { ref: 'cus_x', merchantRef: 'CRM-7' });
    expect(later!.debtor_id).toBe(first!.debtor_id);
    expect(later!.merchant_ref).toBe('CRM-7');
    const other = await upsert(m, 'gocardless', { ref: 'CU7', merchantRef: 'CRM-7' });
    expect(other!.debtor_id).toBe(first!.debtor_id);
    const history = await db.query(`SELECT status, detail FROM status_history WHERE entity = 'customer' AND entity_id = $1`, [first!.id]);
    expect(history.rows).toEqual([{ status: 'debtor_linked', detail: { debtorId: first!.debtor_id, key: 'merchant_ref' } }]);
  });

  maybe('moves a customer that joins an existing debtor, with its cases', async () => {
    const m = merchant('m_move', false);
    const keyed = await upsert(m, 'stripe', { ref: 'cus_k', merchantRef: 'CRM-9' });
    const loose = await upsert(m, 'mollie', { ref: 'cst_l' });
    await db.query(`INSERT INTO cases (id, merchant_id, customer_id, partner_id, status, currency, debtor_id) VALUES ('cse_move','m_move',$1,'refagency','submitted','EUR',$2)`, [loose!.id, loose!.debtor_id]);
    const moved = await upsert(m, 'mollie', { ref: 'cst_l', merchantRef: 'CRM-9' });
    expect(moved!.debtor_id).toBe(keyed!.debtor_id);
    expect((await db.query(`SELECT debtor_id FROM cases WHERE id = 'cse_move'`)).rows[0]).toEqual({ debtor_id: keyed!.debtor_id });
  });

  maybe("never moves a customer known by the merchant's id: a later event without it, or with another, changes nothing", async () => {
    const m = merchant('m_keep', true);
    const c = await upsert(m, 'stripe', { ref: 'cus_keep', merchantRef: 'CRM-1', email: 'a@example.nl' });
    await upsert(m, 'mollie', { ref: 'cst_mail', email: 'b@example.nl' });
    expect((await upsert(m, 'stripe', { ref: 'cus_keep', email: 'b@example.nl' }))!.debtor_id).toBe(c!.debtor_id);
    expect((await upsert(m, 'stripe', { ref: 'cus_keep', merchantRef: 'CRM-2' }))!.debtor_id).toBe(c!.debtor_id);
    expect((await upsert(m, 'stripe', { ref: 'cus_keep' }))!.debtor_id).toBe(c!.debtor_id);
  });
});
