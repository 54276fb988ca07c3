/**
 * A case's status follows its claims (src/ledger/case-status.ts `deriveCaseStatus`, issue 12,
 * hole 9): it does not stay `submitted` while its claims progress one by one.
 */
import { deriveCaseStatus, type ClaimFacts } from '../../src/ledger/case-status';

const claim = (status: string, patch: Partial<ClaimFacts> = {}): ClaimFacts => ({ status, resolution: null, amount_collected: 0, ...patch });

describe('case status from its claims', () => {
  it('no claims: nothing to derive', () => {
    expect(deriveCaseStatus([])).toBeNull();
  });

  it('follows its claims as they progress: as far as the claim furthest behind', () => {
    expect(deriveCaseStatus([claim('submitted'), claim('submitted')])).toMatchObject({ status: 'submitted', ended: false });
    expect(deriveCaseStatus([claim('in_collection'), claim('submitted')])).toMatchObject({ status: 'submitted' });
    expect(deriveCaseStatus([claim('in_collection'), claim('in_collection')])).toMatchObject({ status: 'in_collection' });
    expect(deriveCaseStatus([claim('arrangement'), claim('in_collection')])).toMatchObject({ status: 'in_collection' });
    expect(deriveCaseStatus([claim('arrangement'), claim('arrangement')])).toMatchObject({ status: 'arrangement' });
  });

  it('money in on some claim while others are live: partially_paid', () => {
    expect(deriveCaseStatus([claim('paid', { resolution: 'paid_in_full', amount_collected: 1000 }), claim('in_collection')])).toMatchObject({ status: 'partially_paid', resolution: null, ended: false });
    expect(deriveCaseStatus([claim('partially_paid', { amount_collected: 300 }), claim('submitted')])).toMatchObject({ status: 'partially_paid' });
    // Instalments are how an arrangement pays: every live claim under one keeps the case an arrangement.
    expect(deriveCaseStatus([claim('arrangement', { amount_collected: 300 }), claim('arrangement')])).toMatchObject({ status: 'arrangement' });
    expect(deriveCaseStatus([claim('arrangement', { amount_collected: 300 }), claim('in_collection')])).toMatchObject({ status: 'partially_paid' });
    // An instalment the agency reports as partially_paid on a claim under an arrangement: still the arrangement.
    const plan = { installments: 3, amount: { value: 100, currency: 'EUR' }, firstDueAt: '2026-01-01T00:00:00Z' };
    expect(deriveCaseStatus([claim('partially_paid', { amount_collected: 100, arrangement: plan })])).toMatchObject({ status: 'arrangement' });
    expect(deriveCaseStatus([claim('partially_paid', { amount_collected: 100, arrangement: plan }), claim('arrangement', { arrangement: plan })])).toMatchObject({ status: 'arrangement' });
    expect(deriveCaseStatus([claim('paid', { resolution: 'paid_in_full', amount_collected: 500 }), claim('arrangement', { amount_collected: 100 })])).toMatchObject({ status: 'arrangement' });
    // A lone claim keeps its own status: an arrangement with instalments paid is still an arrangement.
    expect(deriveCaseStatus([claim('arrangement', { amount_collected: 300 })])).toMatchObject({ status: 'arrangement' });
    expect(deriveCaseStatus([claim('partially_paid', { amount_collected: 300 })])).toMatchObject({ status: 'partially_paid' });
  });

  it('paused claims: the case is on hold or disputed only when every live claim is; else the others lead', () => {
    expect(deriveCaseStatus([claim('on_hold'), claim('on_hold'), claim('withdrawn')])).toMatchObject({ status: 'on_hold' });
    expect(deriveCaseStatus([claim('disputed')])).toMatchObject({ status: 'disputed' });
    expect(deriveCaseStatus([claim('on_hold'), claim('in_collection')])).toMatchObject({ status: 'in_collection' });
    expect(deriveCaseStatus([claim('on_hold'), claim('disputed'), claim('arrangement')])).toMatchObject({ status: 'arrangement' });
  });

  // Found by the model test (seed 258743914): a claim held by the merchant beside one the debtor
  // disputes made the derivation throw, and the merchant's hold answered 500.
  it('every live claim paused, but in both ways (held and disputed): the case is disputed', () => {
    expect(deriveCaseStatus([claim('on_hold'), claim('disputed')])).toMatchObject({ status: 'disputed', ended: false });
    expect(deriveCaseStatus([claim('disputed'), claim('on_hold'), claim('withdrawn')])).toMatchObject({ status: 'disputed' });
  });

  it('every claim ended: the case ends the way they did', () => {
    expect(deriveCaseStatus([claim('paid', { resolution: 'paid_in_full' }), claim('paid', { resolution: 'paid_to_merchant' })])).toEqual({ status: 'paid', resolution: 'paid_in_full', ended: true });
    expect(deriveCaseStatus([claim('paid', { resolution: 'paid_to_merchant' })])).toEqual({ status: 'paid', resolution: 'paid_to_merchant', ended: true });
    expect(deriveCaseStatus([claim('withdrawn'), claim('withdrawn')])).toEqual({ status: 'withdrawn', resolution: 'withdrawn_by_merchant', ended: true });
    expect(deriveCaseStatus([claim('uncollectible', { resolution: 'debtor_insolvent' })])).toEqual({ status: 'uncollectible', resolution: 'debtor_insolvent', ended: true });
    expect(deriveCaseStatus([claim('paid', { resolution: 'paid_in_full' }), claim('withdrawn')])).toEqual({ status: 'closed', resolution: null, ended: true });
  });
});
