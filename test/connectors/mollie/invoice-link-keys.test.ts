/**
 * The names a Mollie payment gives the merchant's invoice (connectors/psp/mollie/invoice-link-keys.ts;
 * issue 12, hole 2): what a re-payment through a new `tr_…` uses to find the invoice a failed
 * payment opened, per the merchant's `invoiceLink` rules.
 */
import { DEFAULT_INVOICE_LINK, mollieLinkKeys } from '../../../connectors/psp/mollie/invoice-link-keys';
import { mollieProviderConfigSchema, molliePaymentSchema } from '../../../connectors/psp/mollie/schema';
import { molliePayments } from '../../../sim/psp/mollie-events';

const EUR49 = { value: 4900, currency: 'EUR' };
const read = (p: unknown) => molliePaymentSchema.parse(p);

describe('mollieLinkKeys', () => {
  const failed = read(
    molliePayments.sepaRecurring({ status: 'failed', customerId: 'cst_1', subscriptionId: 'sub_1', createdAt: '2024-05-31T22:30:00+00:00', metadata: { invoiceId: 'ACME-0042' } }),
  );
  const repayment = read(molliePayments.ideal({ status: 'paid', customerId: 'cst_1', metadata: { invoiceId: 'ACME-0042' } }));

  it('by default: the metadata invoice id, then the subscription and its month in Amsterdam time', () => {
    expect(DEFAULT_INVOICE_LINK).toEqual(['metadata.invoiceId', 'subscriptionPeriod']);
    // 22:30 UTC on 31 May is 1 June in Amsterdam, where Mollie schedules the subscription's payments.
    expect(mollieLinkKeys(failed, EUR49)).toEqual([
      { rule: 'metadata.invoiceId', key: 'ACME-0042', registerOnly: true },
      { rule: 'subscriptionPeriod', key: 'sub_1|2024-06' },
    ]);
  });

  it('a one-off re-payment finds the invoice by the metadata its merchant gave it', () => {
    expect(mollieLinkKeys(repayment, EUR49)).toEqual([{ rule: 'metadata.invoiceId', key: 'ACME-0042' }]);
  });

  it('a subscription payment never finds an earlier month by its (copied) metadata or its customer and amount', () => {
    const keys = mollieLinkKeys(failed, EUR49, ['metadata.invoiceId', 'customerAndAmount', 'subscriptionPeriod']);
    expect(keys.filter((k) => !k.registerOnly)).toEqual([{ rule: 'subscriptionPeriod', key: 'sub_1|2024-06' }]);
    expect(keys.filter((k) => k.registerOnly).map((k) => k.rule)).toEqual(['metadata.invoiceId', 'customerAndAmount']);
  });

  it('a re-payment outside the subscription names the subscription and period in its metadata', () => {
    const p = read(molliePayments.ideal({ status: 'paid', customerId: 'cst_1', metadata: { subscriptionId: 'sub_1', period: '2024-06' } }));
    expect(mollieLinkKeys(p, EUR49, ['subscriptionPeriod'])).toEqual([{ rule: 'subscriptionPeriod', key: 'sub_1|2024-06' }]);
    // Without a period it names no period: nothing is guessed.
    const q = read(molliePayments.ideal({ status: 'paid', customerId: 'cst_1', metadata: { subscriptionId: 'sub_1' } }));
    expect(mollieLinkKeys(q, EUR49, ['subscriptionPeriod'])).toEqual([]);
  });

  it('customerAndAmount (opt-in) keys the Mollie customer, currency and exact minor units', () => {
    expect(mollieLinkKeys(repayment, EUR49, ['customerAndAmount'])).toEqual([{ rule: 'customerAndAmount', key: 'cst_1|EUR|4900' }]);
    // A failure never looks an invoice up by it (two failed orders of the same amount are two debts).
    const failedOrder = read(molliePayments.card({ status: 'failed', customerId: 'cst_1', sequenceType: 'oneoff' }));
    expect(mollieLinkKeys(failedOrder, EUR49, ['customerAndAmount'])).toEqual([{ rule: 'customerAndAmount', key: 'cst_1|EUR|4900', registerOnly: true }]);
    const anonymous = read(molliePayments.ideal({ status: 'paid', customerId: null }));
    expect(mollieLinkKeys(anonymous, EUR49, ['customerAndAmount'])).toEqual([]);
  });

  it('any metadata key the merchant names; the order is the merchant’s; [] links nothing', () => {
    const p = read(molliePayments.ideal({ status: 'paid', customerId: 'cst_1', metadata: { orderRef: 77, invoiceId: 'ACME-0042' } }));
    expect(mollieLinkKeys(p, EUR49, ['metadata.orderRef', 'metadata.invoiceId'])).toEqual([
      { rule: 'metadata.orderRef', key: '77' },
      { rule: 'metadata.invoiceId', key: 'ACME-0042' },
    ]);
    expect(mollieLinkKeys(p, EUR49, [])).toEqual([]);
  });
});

describe('providers.mollie.invoiceLink', () => {
  const parse = (invoiceLink: unknown) => mollieProviderConfigSchema.safeParse({ apiKey: 'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsMab', invoiceLink });

  it('takes the rules in priority order', () => {
    const r = parse(['metadata.invoiceNumber', 'subscriptionPeriod', 'customerAndAmount']);
    expect(r.success && r.data.invoiceLink).toEqual(['metadata.invoiceNumber', 'subscriptionPeriod', 'customerAndAmount']);
    expect(parse([]).success).toBe(true);
  });

  it.each([
    ['a misspelt rule', ['customerAndAmout']],
    ['a bare metadata prefix', ['metadata.']],
    ['a rule twice', ['subscriptionPeriod', 'subscriptionPeriod']],
    ['not a list', 'metadata.invoiceId'],
  ])('refuses %s', (_name, value) => {
    const r = parse(value);
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues[0].path[0]).toBe('invoiceLink');
  });
});
