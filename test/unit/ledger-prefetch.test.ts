/**
 * What a batch reads up front (src/ledger/prefetch.ts): a customer is taken once (a second event of
 * it reads the store); "no invoice by these refs" holds only for refs that named none and that the
 * batch has not recorded since; outside a batch nothing is known and every lookup goes to the store.
 */
import type { PaymentEvent } from '../../src/domain/types';
import { forgetCustomers, forgetInvoiceRefs, namesNoInvoice, prefetchLedger, takeCustomer } from '../../src/ledger/prefetch';
import { migratedPglite } from '../support/embedded-db';

const store = migratedPglite(async (db) => {
  await db.query(`INSERT INTO debtors (id, merchant_id) VALUES ('dbt_p1', 'acme')`);
  await db.query(`INSERT INTO customers (id, merchant_id, provider, provider_ref, type, debtor_id, email) VALUES ('cust_p1', 'acme', 'stripe', 'cus_known', 'consumer', 'dbt_p1', 'a@example.nl')`);
  await db.query(`INSERT INTO invoices (id, merchant_id, customer_id, provider, provider_ref, currency, amount_due, status) VALUES ('inv_p1', 'acme', 'cust_p1', 'stripe', 'in_known', 'EUR', 100, 'open')`);
  await db.query(`INSERT INTO invoice_payment_refs (merchant_id, provider, payment_ref, invoice_id) VALUES ('acme', 'stripe', 'pi_known', 'inv_p1')`);
});

const event = (customer: string, invoice: string, payment: string) =>
  ({ merchantId: 'acme', provider: 'stripe', kind: 'payment_failed', customer: { ref: customer }, invoice: { ref: invoice }, payment: { ref: payment } }) as unknown as PaymentEvent;

it('takes a customer once, knows a new one is absent once, and forgets all when a shared debtor changed', async () => {
  await store().tx(async (sql) => {
    await prefetchLedger(sql, [event('cus_known', 'in_a', 'pi_a'), event('cus_new', 'in_b', 'pi_b'), event('cus_other', 'in_c', 'pi_c')]);
    expect(takeCustomer(sql, 'acme', 'stripe', 'cus_known')).toMatchObject({ id: 'cust_p1', debtor_id: 'dbt_p1', email: 'a@example.nl' });
    expect(takeCustomer(sql, 'acme', 'stripe', 'cus_known')).toBeUndefined(); // the second event asks the store
    expect(takeCustomer(sql, 'acme', 'stripe', 'cus_new')).toBeNull();
    expect(takeCustomer(sql, 'acme', 'stripe', 'cus_new')).toBeUndefined();
    forgetCustomers(sql);
    expect(takeCustomer(sql, 'acme', 'stripe', 'cus_other')).toBeUndefined();
  });
});

it('says "no invoice" only for refs that named none, once, and not after the batch recorded them', async () => {
  await store().tx(async (sql) => {
    const fresh = event('cus_x', 'in_new', 'pi_new');
    const byRef = event('cus_x', 'in_known', 'pi_other');
    const byPayment = event('cus_x', 'in_other', 'pi_known');
    const recorded = event('cus_y', 'in_later', 'pi_later');
    await prefetchLedger(sql, [fresh, byRef, byPayment, recorded]);
    expect(namesNoInvoice(sql, byRef)).toBe(false);
    expect(namesNoInvoice(sql, byPayment)).toBe(false);
    expect(namesNoInvoice(sql, fresh)).toBe(true);
    expect(namesNoInvoice(sql, fresh)).toBe(false); // asked once: a second event of it looks
    forgetInvoiceRefs(sql, recorded); // an earlier event of the batch created its invoice
    expect(namesNoInvoice(sql, recorded)).toBe(false);
  });
});

it('knows nothing outside a batch', async () => {
  await store().tx(async (sql) => {
    expect(takeCustomer(sql, 'acme', 'stripe', 'cus_known')).toBeUndefined();
    expect(namesNoInvoice(sql, event('cus_x', 'in_new', 'pi_new'))).toBe(false);
  });
});
