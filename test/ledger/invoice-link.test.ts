/**
 * The pure rule that links a later PSP payment to the open invoice it is for (issue 12, hole 2;
 * src/ledger/invoice-link.ts): keys in the merchant's order, the first key naming an open invoice
 * decides, and two candidates are never guessed between.
 */
import { decideInvoiceLink, type LinkCandidate } from '../../src/ledger/invoice-link';

const cand = (invoiceId: string, rule: string, key: string, extra: Partial<LinkCandidate> = {}): LinkCandidate => ({
  invoiceId,
  rule,
  key,
  status: 'submitted',
  currency: 'EUR',
  customerRef: 'cst_1',
  ...extra,
});

const byInvoiceId = { rule: 'metadata.invoiceId', key: 'ACME-0042' };
const byCustomerAmount = { rule: 'customerAndAmount', key: 'cst_1|EUR|4900' };

describe('decideInvoiceLink', () => {
  it('links a payment to the one open invoice its metadata invoice id names', () => {
    const d = decideInvoiceLink({ keys: [byInvoiceId], currency: 'EUR', customerRef: 'cst_1', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] });
    expect(d).toMatchObject({ kind: 'linked', invoiceId: 'inv_a', rule: 'metadata.invoiceId', key: 'ACME-0042' });
  });

  it('two open invoices with the same customer and amount: never guesses, says which ones', () => {
    const d = decideInvoiceLink({
      keys: [byCustomerAmount],
      currency: 'EUR',
      customerRef: 'cst_1',
      candidates: [cand('inv_b', byCustomerAmount.rule, byCustomerAmount.key), cand('inv_a', byCustomerAmount.rule, byCustomerAmount.key, { status: 'pending_handover' })],
    });
    expect(d).toEqual({
      kind: 'ambiguous',
      rule: 'customerAndAmount',
      key: 'cst_1|EUR|4900',
      invoiceIds: ['inv_a', 'inv_b'],
      note: 'not linked: customerAndAmount cst_1|EUR|4900 names 2 open invoices (inv_a, inv_b); recorded as an invoice of its own',
    });
  });

  it('an ambiguous key of higher priority stops the search: a weaker key does not pick one of them', () => {
    const d = decideInvoiceLink({
      keys: [byInvoiceId, byCustomerAmount],
      currency: 'EUR',
      candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key), cand('inv_b', byInvoiceId.rule, byInvoiceId.key), cand('inv_a', byCustomerAmount.rule, byCustomerAmount.key)],
    });
    expect(d.kind).toBe('ambiguous');
  });

  it('follows the priority order: the first key that names an open invoice wins', () => {
    const candidates = [cand('inv_meta', byInvoiceId.rule, byInvoiceId.key), cand('inv_amount', byCustomerAmount.rule, byCustomerAmount.key)];
    expect(decideInvoiceLink({ keys: [byInvoiceId, byCustomerAmount], currency: 'EUR', candidates })).toMatchObject({ invoiceId: 'inv_meta' });
    expect(decideInvoiceLink({ keys: [byCustomerAmount, byInvoiceId], currency: 'EUR', candidates })).toMatchObject({ invoiceId: 'inv_amount' });
  });

  it('a key that names no open invoice passes to the next one', () => {
    const d = decideInvoiceLink({
      keys: [byInvoiceId, byCustomerAmount],
      currency: 'EUR',
      candidates: [cand('inv_paid', byInvoiceId.rule, byInvoiceId.key, { status: 'paid' }), cand('inv_a', byCustomerAmount.rule, byCustomerAmount.key)],
    });
    expect(d).toMatchObject({ kind: 'linked', invoiceId: 'inv_a', rule: 'customerAndAmount' });
  });

  it('an invoice that is disputed (contested at the agency, or charged back) still owes: it is linked to', () => {
    expect(decideInvoiceLink({ keys: [byInvoiceId], currency: 'EUR', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key, { status: 'disputed' })] })).toMatchObject({ kind: 'linked', invoiceId: 'inv_a' });
  });

  it.each(['paid', 'recovered', 'settled', 'withdrawn', 'closed', 'uncollectible', 'voided'])('an invoice that is %s is not linked to', (status) => {
    expect(decideInvoiceLink({ keys: [byInvoiceId], currency: 'EUR', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key, { status })] })).toEqual({ kind: 'none' });
  });

  it('never links across currencies or to another customer', () => {
    expect(decideInvoiceLink({ keys: [byInvoiceId], currency: 'GBP', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] })).toEqual({ kind: 'none' });
    expect(decideInvoiceLink({ keys: [byInvoiceId], currency: 'EUR', customerRef: 'cst_2', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] })).toEqual({ kind: 'none' });
    // A payment without a customer (a payment link) may still pay the invoice its metadata names.
    expect(decideInvoiceLink({ keys: [byInvoiceId], currency: 'EUR', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] })).toMatchObject({ kind: 'linked' });
  });

  it('a key only kept for later payments is not used to find an invoice for this one', () => {
    const d = decideInvoiceLink({ keys: [{ ...byInvoiceId, registerOnly: true }], currency: 'EUR', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] });
    expect(d).toEqual({ kind: 'none' });
  });

  it('no keys, or a key that names nothing: no link', () => {
    expect(decideInvoiceLink({ keys: [], currency: 'EUR', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] })).toEqual({ kind: 'none' });
    expect(decideInvoiceLink({ keys: [{ rule: 'metadata.invoiceId', key: 'OTHER' }], currency: 'EUR', candidates: [cand('inv_a', byInvoiceId.rule, byInvoiceId.key)] })).toEqual({ kind: 'none' });
  });

  it('never links by a weaker rule an invoice whose own key under a stronger rule contradicts the payment (found by the model-based test)', () => {
    const period = { rule: 'subscriptionPeriod', key: 'sub_1|2026-12' };
    const first = cand('inv_first', period.rule, period.key, { ownKeys: [{ rule: byInvoiceId.rule, key: 'ACME-0001' }, period] });
    // The payment names invoice ACME-0002 and the same subscription and month as the first invoice.
    const d = decideInvoiceLink({ keys: [{ ...byInvoiceId, key: 'ACME-0002' }, period], currency: 'EUR', customerRef: 'cst_1', candidates: [first] });
    expect(d).toEqual({ kind: 'none' });
    // Without a contradicting key the period still links, and a stronger match is never blocked by a weaker key.
    expect(decideInvoiceLink({ keys: [period], currency: 'EUR', customerRef: 'cst_1', candidates: [first] })).toMatchObject({ kind: 'linked', invoiceId: 'inv_first' });
    const named = cand('inv_named', byInvoiceId.rule, byInvoiceId.key, { ownKeys: [byInvoiceId, { rule: 'customerAndAmount', key: 'cst_1|EUR|9999' }] });
    expect(decideInvoiceLink({ keys: [byInvoiceId, byCustomerAmount], currency: 'EUR', customerRef: 'cst_1', candidates: [named] })).toMatchObject({ kind: 'linked', invoiceId: 'inv_named' });
  });
});
