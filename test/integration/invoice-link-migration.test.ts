/**
 * Migration 012b (issue 12, hole 2) on existing data, against both databases (PGlite and a fresh
 * PostgreSQL): Mollie invoices recorded before link keys existed get the keys a later payment
 * looks them up by — the same keys the connector gives a new one (invoice-link-keys.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { migrate, splitStatements } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { mollieLinkKeys } from '../../connectors/psp/mollie/invoice-link-keys';
import { molliePaymentSchema } from '../../connectors/psp/mollie/schema';
import { molliePayments } from '../../sim/psp/mollie-events';
import { DB_BACKENDS, dbSuite } from './db-backends';

const DIR = path.join(__dirname, '../../src/store/migrations');
const BEFORE = fs.readdirSync(DIR).filter((f) => f.endsWith('.sql') && f < '012b').sort();

/** Apply the migrations before 012b as src/store/migrate.ts would, and record them. */
async function migrateBefore(db: Database): Promise<void> {
  await db.tx(async (sql) => {
    await sql.query('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    for (const f of BEFORE) {
      for (const stmt of splitStatements(fs.readFileSync(path.join(DIR, f), 'utf8'))) await sql.query(stmt);
      await sql.query('INSERT INTO schema_migrations (version) VALUES ($1)', [f]);
    }
  });
}

// 22:30 UTC on 31 May is June in Amsterdam: the month is Mollie's, not UTC's.
const PAYMENT = molliePaymentSchema.parse(
  molliePayments.sepaRecurring({ id: 'tr_old1', status: 'failed', customerId: 'cst_old', subscriptionId: 'sub_old', createdAt: '2024-05-31T22:30:00+00:00', metadata: { invoiceId: 'ACME-0042' } }),
);

async function seedLegacy(db: Database): Promise<void> {
  await db.query(`INSERT INTO customers (id, merchant_id, provider, provider_ref, name) VALUES ('cust_m','acme','mollie','cst_old','Jan Jansen'), ('cust_s','acme','stripe','cus_old','Piet')`);
  const cols = `(id, merchant_id, customer_id, provider, provider_ref, number, currency, amount_due, issued_at, subscription_ref, status)`;
  await db.query(`INSERT INTO invoices ${cols} VALUES ('inv_m','acme','cust_m','mollie','tr_old1','ACME-0042','EUR',4900,$1,'sub_old','submitted')`, [PAYMENT.createdAt]);
  await db.query(`INSERT INTO invoices ${cols} VALUES ('inv_s','acme','cust_s','stripe','in_old1','ACME-0042','EUR',4900,$1,'sub_x','submitted')`, [PAYMENT.createdAt]);
}

const backends = DB_BACKENDS;

describe.each(backends)('migration 012b on existing data ($name)', (backend) => {
  let db: Database;
  const { maybe } = dbSuite(backend, async (opened) => {
    db = opened;
    await migrateBefore(db);
    await seedLegacy(db);
    const applied = await migrate(db);
    expect(applied[0]).toBe('012b_invoice_link_keys_backfill.sql');
  });

  maybe('a Mollie invoice gets the keys a new one would get; other PSPs get none', async () => {
    const rows = await db.query<{ invoice_id: string; rule: string; link_key: string }>(`SELECT invoice_id, rule, link_key FROM invoice_link_keys ORDER BY rule`);
    const fresh = mollieLinkKeys(PAYMENT, { value: 4900, currency: 'EUR' }, ['customerAndAmount', 'metadata.invoiceId', 'subscriptionPeriod']);
    expect(rows.rows).toEqual(fresh.map((k) => ({ invoice_id: 'inv_m', rule: k.rule, link_key: k.key })));
    expect(rows.rows.find((r) => r.rule === 'subscriptionPeriod')?.link_key).toBe('sub_old|2024-06');
  });
});
