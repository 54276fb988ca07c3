/**
 * The hand-over rule (contract §7) as a pure function: (a) the failure is final, (b)
 * handoverAfterDays have passed since the first failure, (c) the customer's open amount reaches
 * minAmount; later unpaid invoices are stacked onto an open case within stackWindowDays.
 */
import { decideHandover, handoverDueAt, type HandoverCandidate } from '../../src/policy/handover-policy';
import { DAY_MS } from '../../src/domain/clock';

const T0 = new Date('2026-01-10T09:30:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const policy = { handoverAfterDays: 14, minAmount: { value: 500, currency: 'EUR' }, stackWindowDays: 45 };

const candidate = (over: Partial<HandoverCandidate> = {}): HandoverCandidate => ({
  invoiceId: 'inv_a',
  amountOpen: 1000,
  currency: 'EUR',
  failureFinal: true,
  firstFailedAt: T0,
  ...over,
});

describe('handoverDueAt', () => {
  it('is the first failure plus handoverAfterDays whole days', () => {
    expect(handoverDueAt(T0, { handoverAfterDays: 14 })).toEqual(new Date('2026-01-24T09:30:00.000Z'));
    expect(handoverDueAt(T0, { handoverAfterDays: 0 })).toEqual(T0);
  });
});

describe('decideHandover', () => {
  describe('(a) the failure must be final', () => {
    it('waits with no date while the PSP still retries (no final failure)', () => {
      const d = decideHandover({ now: at(100 * DAY_MS), policy, candidates: [candidate({ failureFinal: false })] });
      expect(d).toEqual({ action: 'wait', until: null, why: expect.stringMatching(/retrying/) });
    });

    it('waits when there are no candidates at all', () => {
      expect(decideHandover({ now: T0, policy, candidates: [] })).toMatchObject({ action: 'wait', until: null });
    });

    it('does not count a final failure with nothing left open', () => {
      const d = decideHandover({ now: at(100 * DAY_MS), policy, candidates: [candidate({ amountOpen: 0 })] });
      expect(d).toMatchObject({ action: 'wait', until: null });
    });
  });

  describe('(b) handoverAfterDays since the first failure', () => {
    it('waits inside the period and says until = first failure + N days', () => {
      const d = decideHandover({ now: at(3 * DAY_MS), policy, candidates: [candidate()] });
      expect(d).toEqual({ action: 'wait', until: new Date(T0.getTime() + 14 * DAY_MS), why: expect.stringMatching(/14-day/) });
    });

    it('waits until the earliest final invoice becomes due when several are pending', () => {
      const d = decideHandover({
        now: at(DAY_MS),
        policy,
        candidates: [
          candidate({ invoiceId: 'inv_late', firstFailedAt: at(5 * DAY_MS) }),
          candidate({ invoiceId: 'inv_early', firstFailedAt: at(0) }),
          // Non-final failures have no hand-over date yet and do not pull the date forward.
          candidate({ invoiceId: 'inv_retrying', firstFailedAt: at(-30 * DAY_MS), failureFinal: false }),
        ],
      });
      expect(d).toMatchObject({ action: 'wait', until: at(14 * DAY_MS) });
    });

    it('hands over at exactly N days (boundary)', () => {
      const d = decideHandover({ now: at(14 * DAY_MS), policy, candidates: [candidate()] });
      expect(d).toEqual({ action: 'open_case', invoiceIds: ['inv_a'], amount: 1000 });
    });

    it('does not hand over one millisecond before N days', () => {
      const d = decideHandover({ now: at(14 * DAY_MS - 1), policy, candidates: [candidate()] });
      expect(d).toEqual({ action: 'wait', until: at(14 * DAY_MS), why: expect.any(String) });
    });

    it('with handoverAfterDays 0 hands over at once when the failure is final', () => {
      const d = decideHandover({ now: T0, policy: { ...policy, handoverAfterDays: 0 }, candidates: [candidate()] });
      expect(d).toEqual({ action: 'open_case', invoiceIds: ['inv_a'], amount: 1000 });
    });

    it('with handoverAfterDays 0 still waits while the PSP retries', () => {
      const d = decideHandover({ now: T0, policy: { ...policy, handoverAfterDays: 0 }, candidates: [candidate({ failureFinal: false })] });
      expect(d).toMatchObject({ action: 'wait', until: null });
    });
  });

  describe('(c) the customer open amount must reach minAmount', () => {
    const now = at(20 * DAY_MS);

    it('waits (no date) when the open amount is below minAmount', () => {
      const d = decideHandover({ now, policy, candidates: [candidate({ amountOpen: 499 })] });
      expect(d).toEqual({ action: 'wait', until: null, why: expect.stringMatching(/below the minimum 500 EUR/) });
    });

    it('opens a case at exactly minAmount', () => {
      const d = decideHandover({ now, policy, candidates: [candidate({ amountOpen: 500 })] });
      expect(d).toEqual({ action: 'open_case', invoiceIds: ['inv_a'], amount: 500 });
    });

    it('sums the customer open candidates in that currency, non-final ones included, but hands over only the due ones', () => {
      const d = decideHandover({
        now,
        policy,
        candidates: [
          candidate({ invoiceId: 'inv_due', amountOpen: 300 }),
          candidate({ invoiceId: 'inv_retrying', amountOpen: 200, failureFinal: false }),
        ],
      });
      expect(d).toEqual({ action: 'open_case', invoiceIds: ['inv_due'], amount: 300 });
    });

    it('does not count open amounts in another currency towards the minimum', () => {
      const d = decideHandover({
        now,
        policy,
        candidates: [candidate({ invoiceId: 'inv_eur', amountOpen: 300 }), candidate({ invoiceId: 'inv_usd', amountOpen: 10_000, currency: 'USD', failureFinal: false })],
      });
      expect(d).toMatchObject({ action: 'wait', until: null });
    });

    it('a minAmount in another currency does not block the hand-over', () => {
      const d = decideHandover({ now, policy, candidates: [candidate({ currency: 'USD', amountOpen: 1 })] });
      expect(d).toEqual({ action: 'open_case', invoiceIds: ['inv_a'], amount: 1 });
    });
  });

  describe('stacking onto the open case', () => {
    const lastClaimAt = at(0);
    const openCase = { id: 'cse_open', currency: 'EUR', lastClaimAt };
    const due = (now: Date) => candidate({ invoiceId: 'inv_next', amountOpen: 1000, firstFailedAt: new Date(now.getTime() - 14 * DAY_MS) });

    it('stacks a due invoice onto the open case whose last claim is within stackWindowDays', () => {
      const now = at(10 * DAY_MS);
      expect(decideHandover({ now, policy, candidates: [due(now)], openCase })).toEqual({ action: 'stack', caseId: 'cse_open', invoiceIds: ['inv_next'] });
    });

    it('stacks at exactly the window edge (last claim + stackWindowDays)', () => {
      const now = at(45 * DAY_MS);
      expect(decideHandover({ now, policy, candidates: [due(now)], openCase })).toEqual({ action: 'stack', caseId: 'cse_open', invoiceIds: ['inv_next'] });
    });

    it('stacks past the window edge too: at most one live case per debtor and partner (issue 12)', () => {
      for (const now of [at(45 * DAY_MS + 1), at(400 * DAY_MS)]) {
        expect(decideHandover({ now, policy, candidates: [due(now)], openCase })).toEqual({ action: 'stack', caseId: 'cse_open', invoiceIds: ['inv_next'] });
      }
    });

    it('ignores minAmount when stacking (the customer is already in collection)', () => {
      const now = at(10 * DAY_MS);
      const small = { ...due(now), amountOpen: 1 };
      expect(decideHandover({ now, policy, candidates: [small], openCase })).toEqual({ action: 'stack', caseId: 'cse_open', invoiceIds: ['inv_next'] });
    });

    it('still waits for the stacked invoice own hand-over period', () => {
      const now = at(10 * DAY_MS);
      const notYet = candidate({ invoiceId: 'inv_next', firstFailedAt: at(5 * DAY_MS) });
      expect(decideHandover({ now, policy, candidates: [notYet], openCase })).toEqual({ action: 'wait', until: at(19 * DAY_MS), why: expect.any(String) });
    });

    it('still waits while the PSP retries the stacked invoice', () => {
      const now = at(10 * DAY_MS);
      expect(decideHandover({ now, policy, candidates: [{ ...due(now), failureFinal: false }], openCase })).toMatchObject({ action: 'wait', until: null });
    });
  });

  it('includes only the due invoices, in the order given', () => {
    const now = at(20 * DAY_MS);
    const d = decideHandover({
      now,
      policy,
      candidates: [
        candidate({ invoiceId: 'inv_1', amountOpen: 400, firstFailedAt: at(0) }),
        candidate({ invoiceId: 'inv_not_due', amountOpen: 400, firstFailedAt: at(10 * DAY_MS) }),
        candidate({ invoiceId: 'inv_retrying', amountOpen: 400, failureFinal: false }),
        candidate({ invoiceId: 'inv_2', amountOpen: 400, firstFailedAt: at(6 * DAY_MS) }),
      ],
    });
    expect(d).toEqual({ action: 'open_case', invoiceIds: ['inv_1', 'inv_2'], amount: 800 });
  });

  it('is pure: the same input gives the same decision and the input is not changed', () => {
    const input = { now: at(20 * DAY_MS), policy, candidates: [candidate(), candidate({ invoiceId: 'inv_b', failureFinal: false })] };
    const copy = structuredClone(input);
    expect(decideHandover(input)).toEqual(decideHandover(input));
    expect(input).toEqual(copy);
  });
});

describe('decideHandover with a country rule’s notice gate', () => {
  it('waits until the debtor’s notice term has run when it ends after the hand-over period', () => {
    const gate = at(20 * DAY_MS);
    const c = candidate({ notBefore: gate });
    const before = decideHandover({ now: at(20 * DAY_MS - 1), policy, candidates: [c] });
    expect(before).toEqual({ action: 'wait', until: gate, why: expect.stringContaining('notice term') });
    expect(decideHandover({ now: gate, policy, candidates: [c] })).toMatchObject({ action: 'open_case', invoiceIds: [c.invoiceId] });
  });

  it('a gate that ends before the hand-over period changes nothing', () => {
    const c = candidate({ notBefore: at(DAY_MS) });
    expect(decideHandover({ now: at(14 * DAY_MS - 1), policy, candidates: [c] })).toMatchObject({ action: 'wait', until: at(14 * DAY_MS) });
  });
});
