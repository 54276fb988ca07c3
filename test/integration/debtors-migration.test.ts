/**
 * Migration 009 (issue 12, hole 3) on existing data, against both databases (PGlite and a fresh
 * PostgreSQL): a store migrated up to 008 holds customers, events and cases from before debtors;
 * after 009 every customer and every case has a debtor, customers the merchant knows by the same
 * id (in stored PSP metadata, or Adyen's shopperReference) are one debtor, other merchants' and
 * unkeyed customers stay apart, and a new PSP customer with that id joins the migrated debtor.
 */
import fs from 'node:fs';
import path from 'node:path';
import { migrate, splitStatements } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { linkDebtor } from '../../src/ledger/debtors';
import { DB_BACKENDS, dbSuite } from './db-backends';

const DIR = path.join(__dirname, '../../src/store/migrations');
const BEFORE = fs.readdirSync(DIR).filter((f) => f.endsWith('.sql') && f < '009').sort();

/** Apply the migrations before 009 as src/store/migrate.ts would, and record them. */
async function migrateBefore009(db: Database): Promise<void> {
  await db.tx(async (sql) => {
    await sql.query('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    for (const f of BEFORE) {
      for (const stmt of splitStatements(fs.readFileSync(path.join(DIR, f), 'utf8'))) await sql.query(stmt);
      await sql.query('INSERT INTO schema_migrations (version) VALUES ($1)', [f]);
    }
  });
}

/** A Stripe invoice event whose subscription metadata names the merchant's customer id (API 2024-06-20 shape). */
const stripeEvent = (merchantRef: string) => ({
  id: 'evt_1', object: 'event', type: 'invoice.payment_failed',
  data: { object: { id: 'in_1', object: 'invoice', customer: 'cus_1', subscription_details: { metadata: { customer_id: merchantRef } } } },
});

async function seedLegacy(db: Database): Promise<void> {
  const q = (text: string, params: unknown[] = []) => db.query(text, params);
  const customer = (id: string, merchant: string, provider: string, ref: string) =>
    q(`INSERT INTO customers (id, merchant_id, provider, provider_ref, name) VALUES ($1,$2,$3,$4,'Jan Jansen')`, [id, merchant, provider, ref]);
  await customer('cust_stripe', 'acme', 'stripe', 'cus_1');
  await customer('cust_adyen', 'acme', 'adyen', 'CRM-1');
  await customer('cust_gc', 'acme', 'gocardless', 'CU0001');
  await customer('cust_other', 'acme', 'stripe', 'cus_2');
  await customer('cust_order', 'acme', 'adyen', 'order:ORD-9');
  await customer('cust_globex', 'globex', 'adyen', 'CRM-1');
  // The merchant's id in stored events, tied to their customers through the sync log.
  const event = async (id: number, provider: string, payload: unknown, customerId: string) => {
    await q(`INSERT INTO inbound_events (id, merchant_id, provider, provider_event_id, event_type, payload) VALUES ($1,'acme',$2,$3,'x',$4)`, [id, provider, `ev${id}`, JSON.stringify(payload)]);
    await q(`INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, customer_id, inbound_event_id) VALUES ('acme','in',$1,'webhook','ok',$2,$3)`, [provider, customerId, id]);
  };
  await event(1, 'stripe', stripeEvent('CRM-1'), 'cust_stripe');
  await event(2, 'gocardless', { id: 'EV1', resource_type: 'payments', resource_metadata: { merchantCustomerId: 'CRM-1' } }, 'cust_gc');
  await event(3, 'stripe', stripeEvent('   '), 'cust_other');
  const kase = (id: string, customerId: string, status: string) =>
    q(`INSERT INTO cases (id, merchant_id, customer_id, partner_id, status, currency) VALUES ($1,'acme',$2,'refagency',$3,'EUR')`, [id, customerId, status]);
  await kase('cse_stripe', 'cust_stripe', 'in_collection');
  await kase('cse_adyen', 'cust_adyen', 'paid');
  await kase('cse_other', 'cust_other', 'submitted');
}

const backends = DB_BACKENDS;

describe.each(backends)('migration 009 on existing data ($name)', (backend) => {
  let db: Database;
  const { maybe } = dbSuite(backend, async (opened) => {
    db = opened;
    await migrateBefore009(db);
    await seedLegacy(db);
    const applied = await migrate(db);
    expect(applied[0]).toBe('009_debtors.sql');
  });

  const debtorOf = async (customerId: string) =>
    (await db.query<{ debtor_id: string; merchant_ref: string | null }>(`SELECT debtor_id, merchant_ref FROM customers WHERE id = $1`, [customerId])).rows[0];

  maybe('gives every existing customer and every existing case a debtor', async () => {
    const missing = await db.query(`SELECT id FROM customers WHERE debtor_id IS NULL UNION ALL SELECT id FROM cases WHERE debtor_id IS NULL`);
    expect(missing.rows).toEqual([]);
    const cases = await db.query<{ id: string; debtor_id: string; customer_debtor: string }>(
      `SELECT k.id, k.debtor_id, c.debtor_id AS customer_debtor FROM cases k JOIN customers c ON c.id = k.customer_id ORDER BY k.id`,
    );
    expect(cases.rows).toHaveLength(3);
    for (const k of cases.rows) expect(k.debtor_id).toBe(k.customer_debtor);
  });

  maybe("merges the customers that share the merchant's id (stored Stripe and GoCardless metadata, Adyen's shopperReference) into one debtor", async () => {
    const stripe = await debtorOf('cust_stripe');
    expect(stripe.merchant_ref).toBe('CRM-1');
    expect(await debtorOf('cust_adyen')).toEqual({ debtor_id: stripe.debtor_id, merchant_ref: 'CRM-1' });
    expect(await debtorOf('cust_gc')).toEqual({ debtor_id: stripe.debtor_id, merchant_ref: 'CRM-1' });
    const debtor = await db.query(`SELECT merchant_id, external_ref, email_norm FROM debtors WHERE id = $1`, [stripe.debtor_id]);
    expect(debtor.rows).toEqual([{ merchant_id: 'acme', external_ref: 'CRM-1', email_norm: null }]);
    const cases = await db.query<{ id: string }>(`SELECT id FROM cases WHERE debtor_id = $1 ORDER BY id`, [stripe.debtor_id]);
    expect(cases.rows.map((r) => r.id)).toEqual(['cse_adyen', 'cse_stripe']);
  });

  maybe("keeps other merchants' customers, unkeyed customers and Adyen's order stand-ins apart", async () => {
    const ids = await Promise.all(['cust_stripe', 'cust_other', 'cust_order', 'cust_globex'].map(debtorOf));
    expect(new Set(ids.map((d) => d.debtor_id)).size).toBe(4);
    expect((await debtorOf('cust_other')).merchant_ref).toBeNull();
    expect((await debtorOf('cust_order')).merchant_ref).toBeNull();
    expect(await debtorOf('cust_globex')).toMatchObject({ merchant_ref: 'CRM-1' });
  });

  maybe("links a new PSP customer carrying the merchant's id to the migrated debtor", async () => {
    const stripe = await debtorOf('cust_stripe');
    const policy = { debtorIdentity: { metadataKeys: ['customer_id'], matchEmail: false } };
    const linked = await db.tx((sql) => linkDebtor(sql, 'acme', 'mollie', { ref: 'cst_new', merchantRef: 'CRM-1' }, policy, new Date()));
    expect(linked).toEqual({ debtorId: stripe.debtor_id, movedFrom: null, key: 'merchant_ref', known: null });
  });

  maybe('still gives a debtor to a customer or case inserted without one (fixtures, older insert paths)', async () => {
    await db.query(`INSERT INTO customers (id, merchant_id, provider, provider_ref) VALUES ('cust_late', 'acme', 'stripe', 'cus_late')`);
    await db.query(`INSERT INTO cases (id, merchant_id, customer_id, partner_id, status, currency) VALUES ('cse_late','acme','cust_late','refagency','submitted','EUR')`);
    const r = await db.query<{ c: string; k: string }>(`SELECT c.debtor_id AS c, k.debtor_id AS k FROM customers c JOIN cases k ON k.customer_id = c.id WHERE c.id = 'cust_late'`);
    expect(r.rows[0].c).toMatch(/^dbt_/);
    expect(r.rows[0].k).toBe(r.rows[0].c);
  });
});
