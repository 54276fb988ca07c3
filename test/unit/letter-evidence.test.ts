/**
 * Letter evidence (issue 12, hole 4) and costs per claim (hole 6), as pure rules: statutory costs
 * under a letter rule only with evidence of the letter (art. 6:96 lid 6 BW), the notice gate
 * without evidence, a reported date not before the due date, and the Wki cap of EUR 140 per six
 * months carried across a debtor's small claims.
 */
import fc from 'fast-check';
import { loadCountryRules, ruleFor } from '../../src/policy/country-rules';
import { AWAITING_LETTER_WHY, costsForClaims, letterDateProblem, letterEvidence, noticeGate } from '../../src/policy/letter-evidence';
import { decideHandover, nextCheckAt } from '../../src/policy/handover-policy';
import { DAY_MS } from '../../src/domain/clock';

const rules = loadCountryRules();
const nl = ruleFor(rules, 'NL', 'consumer')!;
const eur = (x: number) => Math.round(x * 100);
const T0 = new Date('2026-01-02T15:00:00Z');

describe('letter evidence', () => {
  it('is the reported date, else the merchant’s declared dunning day; never assumed', () => {
    expect(letterEvidence({ reminderSentAt: new Date('2026-01-05T00:00:00Z'), firstFailedAt: T0 }, { dunningLetterAfterDays: 3 })).toEqual({ sentAt: new Date('2026-01-05T00:00:00Z'), source: 'reported' });
    expect(letterEvidence({ reminderSentAt: null, firstFailedAt: T0 }, { dunningLetterAfterDays: 3 })).toEqual({ sentAt: new Date(T0.getTime() + 3 * DAY_MS), source: 'merchant_policy' });
    expect(letterEvidence({ reminderSentAt: null, firstFailedAt: T0 }, { dunningLetterAfterDays: 0 })).toEqual({ sentAt: T0, source: 'merchant_policy' });
    expect(letterEvidence({ reminderSentAt: null, firstFailedAt: T0 }, {})).toBeNull();
  });

  it('the notice gate: none without a letter rule; the term’s end with evidence; otherwise waiting for evidence, or none when the merchant hands over without costs', () => {
    const ev = { sentAt: T0, source: 'reported' as const };
    expect(noticeGate(ruleFor(rules, 'DE', 'consumer'), null, { withoutLetterEvidence: 'wait' })).toEqual({ kind: 'none' });
    expect(noticeGate(nl, ev, { withoutLetterEvidence: 'wait' })).toEqual({ kind: 'ends', at: new Date('2026-01-21T00:00:00Z') });
    expect(noticeGate(nl, null, { withoutLetterEvidence: 'wait' })).toEqual({ kind: 'awaiting_letter' });
    expect(noticeGate(nl, null, { withoutLetterEvidence: 'hand_over_without_costs' })).toEqual({ kind: 'none' });
  });

  it('a reported letter date before the due date is refused; on or after it stands; no due date, no check', () => {
    expect(letterDateProblem(new Date('2026-01-01T23:00:00Z'), new Date('2026-01-02T08:00:00Z'))).toMatch(/before the invoice's due date 2026-01-02/);
    expect(letterDateProblem(new Date('2026-01-02T00:00:00Z'), new Date('2026-01-02T08:00:00Z'))).toBeNull();
    expect(letterDateProblem(new Date('2026-01-01T00:00:00Z'), null)).toBeNull();
  });
});

describe('the hand-over decision without letter evidence', () => {
  const policy = { handoverAfterDays: 0, minAmount: { value: 0, currency: 'EUR' }, stackWindowDays: 45 };
  const cand = (id: string, extra: object = {}) => ({ invoiceId: id, amountOpen: 5000, currency: 'EUR', failureFinal: true, firstFailedAt: T0, ...extra });

  it('waits, with no date to wake up at, and says why', () => {
    expect(decideHandover({ now: new Date(T0.getTime() + 100 * DAY_MS), policy, candidates: [cand('a', { awaitingLetter: true })] })).toEqual({ action: 'wait', until: null, why: AWAITING_LETTER_WHY });
  });

  it('an invoice with evidence goes; the one without it stays behind (not stacked either)', () => {
    const now = new Date(T0.getTime() + 30 * DAY_MS);
    const d = decideHandover({ now, policy, candidates: [cand('a', { awaitingLetter: true }), cand('b', { notBefore: new Date(T0.getTime() + 20 * DAY_MS) })] });
    expect(d).toEqual({ action: 'open_case', invoiceIds: ['b'], amount: 5000 });
    const s = decideHandover({ now, policy, candidates: [cand('a', { awaitingLetter: true })], openCase: { id: 'cse_1', currency: 'EUR', lastClaimAt: now } });
    expect(s.action).toBe('wait');
  });
});

describe('the next check after a hand-over', () => {
  const policy = { handoverAfterDays: 0 };
  const cand = (id: string, extra: object = {}) => ({ invoiceId: id, amountOpen: 5000, currency: 'EUR', failureFinal: true, firstFailedAt: T0, ...extra });

  it('is when the first invoice left behind comes out of its own notice term; none for one waiting for a letter', () => {
    const now = new Date(T0.getTime() + 19 * DAY_MS);
    const later = new Date(T0.getTime() + 20 * DAY_MS);
    const candidates = [cand('a', { notBefore: now }), cand('b', { notBefore: later }), cand('c', { awaitingLetter: true })];
    expect(nextCheckAt(now, policy, candidates, ['a'])).toEqual(later);
    expect(nextCheckAt(now, policy, candidates, ['a', 'b'])).toBeNull();
  });
});

describe('costs per claim', () => {
  const ev = { sentAt: T0, source: 'reported' as const };

  it('no evidence under a letter rule: 0, with the reason; with evidence: the WIK costs on the claim’s own principal', () => {
    const m = costsForClaims(nl, [{ key: 'a', principal: eur(500), evidence: null }, { key: 'b', principal: eur(500), evidence: ev }], { currency: 'EUR', includeVat: false, earlierSmall: 0 });
    expect(m.get('a')).toMatchObject({ value: 0, vat: 0, basis: 'no costs: no evidence of a compliant 14-day letter (veertiendagenbrief, art. 6:96 lid 6 BW)' });
    expect(m.get('b')).toMatchObject({ value: eur(75), basis: expect.stringContaining('WIK') });
  });

  it('a rule without a letter requirement (NL business) needs no evidence; no rule means no statutory costs at all', () => {
    expect(costsForClaims(ruleFor(rules, 'NL', 'business'), [{ key: 'a', principal: eur(500), evidence: null }], { currency: 'EUR', includeVat: false, earlierSmall: 0 }).get('a')).toMatchObject({ value: eur(75) });
    expect(costsForClaims(null, [{ key: 'a', principal: eur(500), evidence: ev }], { currency: 'EUR', includeVat: false, earlierSmall: 0 }).get('a')).toBeNull();
  });

  it('stacked small claims: EUR 40 each until the EUR 140 of the window is used up, then 0; larger claims are not capped', () => {
    const claims = [1, 2, 3, 4, 5].map((i) => ({ key: `m${i}`, principal: eur(49), evidence: ev }));
    const m = costsForClaims(nl, [...claims, { key: 'big', principal: eur(500), evidence: ev }], { currency: 'EUR', includeVat: false, earlierSmall: 0 });
    expect(['m1', 'm2', 'm3', 'm4', 'm5', 'big'].map((k) => m.get(k)!.value)).toEqual([eur(40), eur(40), eur(40), eur(20), 0, eur(75)]);
    // Earlier claims in the window count: EUR 120 already charged leaves EUR 20.
    expect(costsForClaims(nl, [claims[0]], { currency: 'EUR', includeVat: false, earlierSmall: eur(120) }).get('m1')!.value).toBe(eur(20));
  });

  it('property: over any run of claims, the small ones never carry more than EUR 140 before VAT, and none carries costs without evidence', () => {
    const claim = fc.record({ principal: fc.integer({ min: 1, max: 100_000 }), evidenced: fc.boolean() });
    fc.assert(fc.property(fc.array(claim, { maxLength: 20 }), fc.integer({ min: 0, max: 20000 }), fc.boolean(), (list, earlier, vat) => {
      const m = costsForClaims(nl, list.map((c, i) => ({ key: String(i), principal: c.principal, evidence: c.evidenced ? ev : null })), { currency: 'EUR', includeVat: vat, earlierSmall: earlier });
      let small = 0;
      list.forEach((c, i) => {
        const x = m.get(String(i))!;
        if (!c.evidenced) expect(x.value).toBe(0);
        if (c.principal < 26667) small += x.value - x.vat;
      });
      expect(small).toBeLessThanOrEqual(Math.max(0, eur(140) - earlier));
    }));
  });
});

describe('the policy keys', () => {
  it('noticeAfterDays (which assumed a letter by default) is refused with a pointer to dunningLetterAfterDays; the new keys have no letter default', () => {
    const { policySchema } = require('../../src/config/schema') as typeof import('../../src/config/schema');
    const r = policySchema.safeParse({ noticeAfterDays: 0 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0].message).toMatch(/replaced by dunningLetterAfterDays/);
    const p = policySchema.parse({});
    // Absent: no letter is assumed, an invoice without evidence waits, no VAT on costs.
    expect([p.dunningLetterAfterDays, p.withoutLetterEvidence, p.costsIncludeVat]).toEqual([undefined, undefined, undefined]);
    expect(noticeGate(nl, null, p)).toEqual({ kind: 'awaiting_letter' });
  });
});
