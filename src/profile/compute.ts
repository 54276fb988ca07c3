/**
 * The pure core of a debtor's payment-behaviour profile (issue 17): plain facts in (the debtor's
 * invoices, cases, claims and their status history, all of ONE merchant), profile out. No SQL and
 * no clock: the loader (./profile.ts) reads the rows, the caller gives `now`.
 *
 * What is counted, per window (the last 3, 6 and 12 calendar months before `now`; an event counts
 * when it happened strictly after the window's start, so one exactly 3 months old is outside the
 * 3-month window and one a day younger is inside):
 *
 *  - failures: every failed payment attempt (`payment_failed` on an invoice; the PSP's
 *    "uncollectible" mark is no attempt), by canonical reason; amounts: the failed invoices' amounts
 *    due, each invoice once;
 *  - recovered: an invoice paid through the PSP after a failure — while the PSP still retried
 *    (`byRetry`), after its last attempt failed (`afterFinalFailure`), or after the hand-over
 *    (`afterHandover`, paid to the merchant), and through which PSP (`byPsp`);
 *  - handedOver: invoices the hub handed to a collection partner;
 *  - collected: invoices a partner collected in full (`count`, `byPartner`) and the money partners
 *    collected in the window (`amounts`, instalments included);
 *  - arrangements: payment plans a partner agreed (`agreed`), and how they ended: `kept` (every
 *    claim under the plan paid) or `broken` (a claim under the plan went back to collection or was
 *    written off). One plan per case, however many claims it covers;
 *  - disputes: invoices disputed — a chargeback at the PSP, or the debtor disputing the claim with
 *    the partner — each invoice once, and chargebacks of payments the hub holds no invoice for;
 *  - writtenOff: invoices a partner wrote off (uncollectible).
 *
 * Flags (only those that hold are listed, each with a sentence and the facts behind it):
 * `in_collection_now`, `broken_arrangement_12m`, `repeated_insufficient_funds`, `disputed_12m`.
 * There is no score: a merchant reads the flags and decides.
 */
import { formatMoney } from '../domain/money';
import type { Money } from '../domain/types';

export type WindowName = '3m' | '6m' | '12m';
export const WINDOWS: readonly { name: WindowName; months: 3 | 6 | 12 }[] = [
  { name: '3m', months: 3 },
  { name: '6m', months: 6 },
  { name: '12m', months: 12 },
];

export const FLAG_NAMES = ['in_collection_now', 'broken_arrangement_12m', 'repeated_insufficient_funds', 'disputed_12m'] as const;
export type FlagName = (typeof FLAG_NAMES)[number];

/** The merchant's thresholds (policy.behaviour, src/config/schema.ts), with defaults filled in. */
export interface BehaviourThresholds {
  /** `repeated_insufficient_funds`: at least `count` attempts failed for insufficient funds within the last `months`. */
  repeatedInsufficientFunds: { count: number; months: 3 | 6 | 12 };
  /** `broken_arrangement_12m`: at least `count` payment arrangements broken within the last 12 months. */
  brokenArrangements: { count: number };
  /** `disputed_12m`: at least `count` disputes within the last 12 months. */
  disputes: { count: number };
}

export const BEHAVIOUR_DEFAULTS: BehaviourThresholds = {
  repeatedInsufficientFunds: { count: 3, months: 6 },
  brokenArrangements: { count: 1 },
  disputes: { count: 1 },
};

export interface ProfileFlag {
  name: string;
  on: boolean;
  why: string;
  facts: Record<string, unknown>;
}

/** How many, and how much per currency (sorted by currency). */
export interface Tally {
  count: number;
  amounts: Money[];
}

export interface WindowCounts {
  /** The window's start (exclusive): events after it count. */
  since: string;
  failures: Tally & { byReason: Record<string, number> };
  recovered: Tally & { byPsp: Record<string, number>; byRetry: number; afterFinalFailure: number; afterHandover: number };
  handedOver: Tally;
  collected: Tally & { byPartner: Record<string, number> };
  arrangements: { agreed: number; kept: number; broken: number };
  disputes: Tally & { chargebacks: number; withPartner: number };
  writtenOff: Tally;
}

export interface CurrentState {
  /** A case with a partner is live now. */
  inCollection: boolean;
  /** The partners holding the live cases. */
  partnerIds: string[];
  /** What the debtor owes now (failed, unpaid invoices, with a partner or not): the largest currency's; all of them in `openAmounts`. */
  openAmount: Money | null;
  openAmounts: Money[];
  /** The live cases. */
  cases: { id: string; partnerId: string; partnerRef: string | null; status: string }[];
}

export interface DebtorProfile {
  debtorId: string;
  asOf: string;
  windows: Record<WindowName, WindowCounts>;
  current: CurrentState;
  /** The flags that hold (on), in FLAG_NAMES order. */
  flags: ProfileFlag[];
  /**
   * When an on flag may turn off by time alone (its oldest counted event leaving the window), for the
   * hub's re-check; null when none can.
   */
  recheckAt?: string | null;
}

// ---- the facts --------------------------------------------------------------------------------

export interface ProfileInvoiceFact {
  id: string;
  ref: string;
  provider: string;
  currency: string;
  amountDue: number;
  amountPaid: number;
  amountCollected: number;
  status: string;
  failureCount: number;
  failureReason: string | null;
  firstFailedAt: string | Date | null;
  caseId: string | null;
}

export interface ProfileCaseFact {
  id: string;
  partnerId: string;
  partnerRef: string | null;
  status: string;
  currency: string;
}

export interface ProfileClaimFact {
  id: string;
  caseId: string;
  invoiceId: string;
  status: string;
}

export interface ProfileHistoryFact {
  id: number | string;
  entity: string;
  entityId: string;
  status: string;
  reason: string | null;
  source: string;
  detail: Record<string, any> | null;
  occurredAt: string | Date;
}

/** Everything of one debtor of one merchant the profile is made of. */
export interface ProfileFacts {
  debtorId: string;
  invoices: ProfileInvoiceFact[];
  cases: ProfileCaseFact[];
  claims: ProfileClaimFact[];
  history: ProfileHistoryFact[];
}

// ---- time -------------------------------------------------------------------------------------

const DAY_MS = 86_400_000;

/** `months` calendar months before `d` (UTC), the day clamped to the month's last (31 May − 3 months = 28/29 Feb). */
export function monthsBefore(d: Date, months: number): Date {
  return addMonths(d, -months);
}

export function addMonths(d: Date, months: number): Date {
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const target = new Date(Date.UTC(y, m, 1, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()));
  const last = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(d.getUTCDate(), last));
  return target;
}

const ms = (d: string | Date) => new Date(d).getTime();
const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);

// ---- events -----------------------------------------------------------------------------------

/** One dated fact the windows count. */
type ProfileEvent =
  | { kind: 'failure'; at: number; invoiceId: string; reason: string }
  | { kind: 'recovered'; at: number; invoiceId: string; psp: string; how: 'byRetry' | 'afterFinalFailure' | 'afterHandover'; amount: Money }
  | { kind: 'handed_over'; at: number; invoiceId: string; partnerId: string | null; amount: Money }
  | { kind: 'collected_money'; at: number; invoiceId: string; partnerId: string; amount: Money }
  | { kind: 'collected_in_full'; at: number; invoiceId: string; partnerId: string }
  | { kind: 'arrangement_agreed'; at: number; caseId: string; partnerId: string }
  | { kind: 'arrangement_kept'; at: number; caseId: string; partnerId: string; agreedAt: number }
  | { kind: 'arrangement_broken'; at: number; caseId: string; partnerId: string; agreedAt: number; status: string }
  | { kind: 'dispute'; at: number; invoiceId: string | null; by: 'chargeback' | 'partner'; source: string; amount: Money | null }
  | { kind: 'written_off'; at: number; invoiceId: string; partnerId: string; reason: string | null; amount: Money };

const byTime = (a: ProfileHistoryFact, b: ProfileHistoryFact) => ms(a.occurredAt) - ms(b.occurredAt) || Number(a.id) - Number(b.id);
const money = (value: number, currency: string): Money => ({ value, currency });
const openOf = (i: ProfileInvoiceFact) => Math.max(0, i.amountDue - i.amountPaid - i.amountCollected);

/** Live statuses of a case with a partner. */
const LIVE_CASE = ['submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold', 'disputed'];
/** A failed invoice not settled yet (owed now). */
const UNSETTLED = ['open', 'pending_handover', ...LIVE_CASE];
/** A claim under an arrangement that moves to one of these broke it. */
const BREAKS_ARRANGEMENT = ['submitted', 'in_collection', 'uncollectible'];
/** A claim that ends one of these ways leaves the arrangement without keeping or breaking it. */
const LEAVES_ARRANGEMENT = ['withdrawn', 'closed'];

function events(f: ProfileFacts): ProfileEvent[] {
  const out: ProfileEvent[] = [];
  const invoices = new Map(f.invoices.map((i) => [i.id, i]));
  const cases = new Map(f.cases.map((k) => [k.id, k]));
  const claims = new Map(f.claims.map((c) => [c.id, c]));
  const partners = new Set(f.cases.map((k) => k.partnerId));
  const history = [...f.history].sort(byTime);
  const partnerOfInvoice = (inv: ProfileInvoiceFact | undefined, claimId?: unknown): string | null => {
    const claim = typeof claimId === 'string' ? claims.get(claimId) : undefined;
    const caseId = claim?.caseId ?? inv?.caseId ?? f.claims.filter((c) => c.invoiceId === inv?.id).pop()?.caseId;
    return (caseId && cases.get(caseId)?.partnerId) || null;
  };

  // Per invoice, walking its timeline in order: what the PSP said before each payment.
  const finalBefore = new Set<string>();
  const handedOverBefore = new Set<string>();
  const collectedSoFar = new Map<string, number>();
  const disputedInvoices = new Set<string>();
  const writtenOffInvoices = new Set<string>();
  const failedInvoices = new Set<string>();

  for (const h of history) {
    const at = ms(h.occurredAt);
    if (h.entity === 'customer' && h.status === 'chargeback') {
      // A chargeback of a payment the hub holds no invoice for: kept on the customer's timeline.
      const amount = h.detail?.amount && typeof h.detail.amount.value === 'number' ? money(h.detail.amount.value, String(h.detail.amount.currency)) : null;
      out.push({ kind: 'dispute', at, invoiceId: null, by: 'chargeback', source: h.source, amount });
      continue;
    }
    if (h.entity !== 'invoice') continue;
    const inv = invoices.get(h.entityId);
    if (!inv) continue;
    const due = money(inv.amountDue, inv.currency);
    switch (h.status) {
      case 'payment_failed':
        if (h.detail?.final === true) finalBefore.add(inv.id);
        // The PSP's "uncollectible" mark (Stripe) is recorded the same way, but it is no payment attempt.
        if (h.detail?.code === 'marked_uncollectible') break;
        failedInvoices.add(inv.id);
        out.push({ kind: 'failure', at, invoiceId: inv.id, reason: h.reason ?? 'unknown' });
        break;
      case 'pending_handover':
        finalBefore.add(inv.id);
        break;
      case 'recovered':
        out.push({ kind: 'recovered', at, invoiceId: inv.id, psp: h.source, how: finalBefore.has(inv.id) ? 'afterFinalFailure' : 'byRetry', amount: money(inv.amountPaid || inv.amountDue, inv.currency) });
        break;
      case 'submitted':
        // The hub's hand-over (the partner's own `submitted` confirms it: not another one).
        if (h.source === 'hub' && !handedOverBefore.has(inv.id)) {
          handedOverBefore.add(inv.id);
          out.push({ kind: 'handed_over', at, invoiceId: inv.id, partnerId: typeof h.detail?.partner === 'string' ? h.detail.partner : partnerOfInvoice(inv, h.detail?.claimId), amount: due });
        }
        break;
      case 'paid':
        if (h.reason === 'paid_to_merchant') {
          out.push({ kind: 'recovered', at, invoiceId: inv.id, psp: h.source, how: 'afterHandover', amount: money(inv.amountPaid || openOf(inv) || inv.amountDue, inv.currency) });
        } else if (partners.has(h.source)) {
          out.push({ kind: 'collected_in_full', at, invoiceId: inv.id, partnerId: h.source });
        }
        break;
      case 'disputed':
        if (!disputedInvoices.has(inv.id)) {
          disputedInvoices.add(inv.id);
          const byPartner = partners.has(h.source);
          out.push({ kind: 'dispute', at, invoiceId: inv.id, by: byPartner ? 'partner' : 'chargeback', source: h.source, amount: due });
        }
        break;
      case 'uncollectible':
        if (partners.has(h.source) && !writtenOffInvoices.has(inv.id)) {
          writtenOffInvoices.add(inv.id);
          out.push({ kind: 'written_off', at, invoiceId: inv.id, partnerId: h.source, reason: h.reason, amount: money(openOf(inv) || inv.amountDue, inv.currency) });
        }
        break;
    }
    // Money a partner collected: the running total on the invoice's rows (instalments included).
    const total = Number(h.detail?.amountCollected?.value);
    if (partners.has(h.source) && Number.isFinite(total)) {
      const before = collectedSoFar.get(inv.id) ?? 0;
      if (total > before) out.push({ kind: 'collected_money', at, invoiceId: inv.id, partnerId: h.source, amount: money(total - before, inv.currency) });
      collectedSoFar.set(inv.id, Math.max(before, total));
    }
  }
  // Invoices whose failures predate the history (imported): each counts once, at its first failure.
  for (const inv of f.invoices) {
    if (!failedInvoices.has(inv.id) && inv.failureCount > 0 && inv.firstFailedAt) {
      out.push({ kind: 'failure', at: ms(inv.firstFailedAt), invoiceId: inv.id, reason: inv.failureReason ?? 'unknown' });
    }
  }
  out.push(...arrangementEvents(f, history, cases, claims));
  return out.sort((a, b) => a.at - b.at);
}

/**
 * Payment arrangements, one plan per case: agreed when a claim of the case first goes under an
 * arrangement; kept once every claim under it is paid; broken as soon as one of them goes back to
 * collection or is written off. A claim withdrawn or closed leaves the plan (neither).
 */
function arrangementEvents(f: ProfileFacts, history: ProfileHistoryFact[], cases: Map<string, ProfileCaseFact>, claims: Map<string, ProfileClaimFact>): ProfileEvent[] {
  const out: ProfileEvent[] = [];
  const plans = new Map<string, { agreedAt: number; under: Set<string>; paid: number }>();
  const last = new Map<string, string>();
  for (const h of history) {
    if (h.entity !== 'claim') continue;
    const claim = claims.get(h.entityId);
    const kase = claim ? cases.get(claim.caseId) : undefined;
    if (!claim || !kase) continue;
    const at = ms(h.occurredAt);
    const previous = last.get(claim.id);
    last.set(claim.id, h.status);
    let plan = plans.get(kase.id);
    if (h.status === 'arrangement' || (h.detail?.arrangement && h.status === 'partially_paid')) {
      if (!plan) {
        plan = { agreedAt: at, under: new Set(), paid: 0 };
        plans.set(kase.id, plan);
        out.push({ kind: 'arrangement_agreed', at, caseId: kase.id, partnerId: kase.partnerId });
      }
      plan.under.add(claim.id);
      continue;
    }
    if (!plan || !plan.under.has(claim.id)) continue;
    // Broken: straight from paying the plan back to collection (or written off). A claim resumed
    // after a hold or a dispute was not paying the plan then: its return to collection breaks nothing.
    if (BREAKS_ARRANGEMENT.includes(h.status) && (previous === 'arrangement' || previous === 'partially_paid')) {
      out.push({ kind: 'arrangement_broken', at, caseId: kase.id, partnerId: kase.partnerId, agreedAt: plan.agreedAt, status: h.status });
      plans.delete(kase.id);
    } else if (h.status === 'paid') {
      plan.under.delete(claim.id);
      plan.paid++;
    } else if (LEAVES_ARRANGEMENT.includes(h.status) || BREAKS_ARRANGEMENT.includes(h.status)) {
      plan.under.delete(claim.id);
    }
    if (plans.has(kase.id) && plan.under.size === 0) {
      if (plan.paid > 0) out.push({ kind: 'arrangement_kept', at, caseId: kase.id, partnerId: kase.partnerId, agreedAt: plan.agreedAt });
      plans.delete(kase.id);
    }
  }
  void f;
  return out;
}

// ---- windows ----------------------------------------------------------------------------------

function addTo(list: Money[], m: Money | null): void {
  if (!m || !(m.value > 0)) return;
  const x = list.find((a) => a.currency === m.currency);
  if (x) x.value += m.value;
  else list.push({ ...m });
}
const sortMoney = (list: Money[]) => list.sort((a, b) => a.currency.localeCompare(b.currency));
const bump = (rec: Record<string, number>, key: string) => void (rec[key] = (rec[key] ?? 0) + 1);

function windowCounts(all: ProfileEvent[], since: Date, invoices: Map<string, ProfileInvoiceFact>): WindowCounts {
  const w: WindowCounts = {
    since: since.toISOString(),
    failures: { count: 0, amounts: [], byReason: {} },
    recovered: { count: 0, amounts: [], byPsp: {}, byRetry: 0, afterFinalFailure: 0, afterHandover: 0 },
    handedOver: { count: 0, amounts: [] },
    collected: { count: 0, amounts: [], byPartner: {} },
    arrangements: { agreed: 0, kept: 0, broken: 0 },
    disputes: { count: 0, amounts: [], chargebacks: 0, withPartner: 0 },
    writtenOff: { count: 0, amounts: [] },
  };
  const failedOnce = new Set<string>();
  for (const e of all) {
    if (e.at <= since.getTime()) continue;
    switch (e.kind) {
      case 'failure': {
        w.failures.count++;
        bump(w.failures.byReason, e.reason);
        const inv = invoices.get(e.invoiceId);
        if (inv && !failedOnce.has(inv.id)) {
          failedOnce.add(inv.id);
          addTo(w.failures.amounts, money(inv.amountDue, inv.currency));
        }
        break;
      }
      case 'recovered':
        w.recovered.count++;
        w.recovered[e.how]++;
        bump(w.recovered.byPsp, e.psp);
        addTo(w.recovered.amounts, e.amount);
        break;
      case 'handed_over':
        w.handedOver.count++;
        addTo(w.handedOver.amounts, e.amount);
        break;
      case 'collected_money':
        addTo(w.collected.amounts, e.amount);
        break;
      case 'collected_in_full':
        w.collected.count++;
        bump(w.collected.byPartner, e.partnerId);
        break;
      case 'arrangement_agreed':
        w.arrangements.agreed++;
        break;
      case 'arrangement_kept':
        w.arrangements.kept++;
        break;
      case 'arrangement_broken':
        w.arrangements.broken++;
        break;
      case 'dispute':
        w.disputes.count++;
        if (e.by === 'partner') w.disputes.withPartner++;
        else w.disputes.chargebacks++;
        addTo(w.disputes.amounts, e.amount);
        break;
      case 'written_off':
        w.writtenOff.count++;
        addTo(w.writtenOff.amounts, e.amount);
        break;
    }
  }
  for (const t of [w.failures, w.recovered, w.handedOver, w.collected, w.disputes, w.writtenOff]) sortMoney(t.amounts);
  return w;
}

function currentState(f: ProfileFacts): CurrentState {
  const live = f.cases.filter((k) => LIVE_CASE.includes(k.status)).sort((a, b) => a.id.localeCompare(b.id));
  const open: Money[] = [];
  for (const inv of f.invoices) if (UNSETTLED.includes(inv.status) && inv.failureCount > 0) addTo(open, money(openOf(inv), inv.currency));
  const openAmounts = open.sort((a, b) => b.value - a.value || a.currency.localeCompare(b.currency));
  return {
    inCollection: live.length > 0,
    partnerIds: [...new Set(live.map((k) => k.partnerId))].sort(),
    openAmount: openAmounts[0] ?? null,
    openAmounts,
    cases: live.map((k) => ({ id: k.id, partnerId: k.partnerId, partnerRef: k.partnerRef, status: k.status })),
  };
}

// ---- flags ------------------------------------------------------------------------------------

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const moneyText = (list: Money[]) => list.map(formatMoney).join(' + ');

interface FlagResult {
  flag: ProfileFlag;
  /** When it may turn off by time alone (the oldest event it needs leaving its window). */
  offAt: number | null;
}

/** The time at which fewer than `count` of these events remain in an m-month window. */
function offAtFor(times: number[], count: number, months: number): number | null {
  if (times.length < count) return null;
  const sorted = [...times].sort((a, b) => b - a);
  return addMonths(new Date(sorted[count - 1]), months).getTime();
}

function flags(all: ProfileEvent[], current: CurrentState, t: BehaviourThresholds, now: Date, invoices: Map<string, ProfileInvoiceFact>): FlagResult[] {
  const out: FlagResult[] = [];
  const refOf = (id: string | null) => (id ? (invoices.get(id)?.ref ?? id) : null);

  if (current.inCollection) {
    const owed = current.openAmounts.length ? `, ${moneyText(current.openAmounts)} open` : '';
    out.push({
      flag: {
        name: 'in_collection_now', on: true,
        why: `In collection now with ${current.partnerIds.join(', ')}: ${plural(current.cases.length, 'live case')} (${current.cases.map((k) => `${k.id} ${k.status.replace(/_/g, ' ')}`).join('; ')})${owed}.`,
        facts: { partnerIds: current.partnerIds, cases: current.cases, openAmounts: current.openAmounts },
      },
      offAt: null,
    });
  }

  const twelve = monthsBefore(now, 12).getTime();
  const broken = all.filter((e): e is Extract<ProfileEvent, { kind: 'arrangement_broken' }> => e.kind === 'arrangement_broken' && e.at > twelve);
  if (broken.length >= t.brokenArrangements.count) {
    out.push({
      flag: {
        name: 'broken_arrangement_12m', on: true,
        why: `Broke ${plural(broken.length, 'payment arrangement')} in the last 12 months (threshold ${t.brokenArrangements.count}): ${broken.map((b) => `case ${b.caseId} with ${b.partnerId}, agreed ${isoDay(b.agreedAt)}, back to ${b.status.replace(/_/g, ' ')} on ${isoDay(b.at)}`).join('; ')}.`,
        facts: {
          count: broken.length, threshold: t.brokenArrangements.count, months: 12,
          arrangements: broken.map((b) => ({ caseId: b.caseId, partnerId: b.partnerId, agreedAt: new Date(b.agreedAt).toISOString(), brokenAt: new Date(b.at).toISOString(), status: b.status })),
        },
      },
      offAt: offAtFor(broken.map((b) => b.at), t.brokenArrangements.count, 12),
    });
  }

  const rif = t.repeatedInsufficientFunds;
  const since = monthsBefore(now, rif.months).getTime();
  const nsf = all.filter((e): e is Extract<ProfileEvent, { kind: 'failure' }> => e.kind === 'failure' && e.reason === 'insufficient_funds' && e.at > since);
  if (nsf.length >= rif.count) {
    const invoicesHit = [...new Set(nsf.map((e) => e.invoiceId))];
    out.push({
      flag: {
        name: 'repeated_insufficient_funds', on: true,
        why: `${plural(nsf.length, 'payment')} failed for insufficient funds in the last ${rif.months} months (threshold ${rif.count}), on ${plural(invoicesHit.length, 'invoice')}; the last on ${isoDay(nsf[nsf.length - 1].at)}.`,
        facts: {
          count: nsf.length, threshold: rif.count, months: rif.months,
          failures: nsf.map((e) => ({ invoiceId: e.invoiceId, invoiceRef: refOf(e.invoiceId), at: new Date(e.at).toISOString() })),
        },
      },
      offAt: offAtFor(nsf.map((e) => e.at), rif.count, rif.months),
    });
  }

  const disputes = all.filter((e): e is Extract<ProfileEvent, { kind: 'dispute' }> => e.kind === 'dispute' && e.at > twelve);
  if (disputes.length >= t.disputes.count) {
    const what = (d: (typeof disputes)[number]) =>
      `${d.by === 'chargeback' ? `a chargeback at ${d.source}` : `disputed with ${d.source}`}${d.invoiceId ? ` on invoice ${refOf(d.invoiceId)}` : ''} (${isoDay(d.at)})`;
    out.push({
      flag: {
        name: 'disputed_12m', on: true,
        why: `Disputed ${plural(disputes.length, 'payment')} in the last 12 months (threshold ${t.disputes.count}): ${disputes.map(what).join('; ')}.`,
        facts: {
          count: disputes.length, threshold: t.disputes.count, months: 12,
          disputes: disputes.map((d) => ({ by: d.by, source: d.source, invoiceId: d.invoiceId, invoiceRef: refOf(d.invoiceId), at: new Date(d.at).toISOString(), amount: d.amount })),
        },
      },
      offAt: offAtFor(disputes.map((d) => d.at), t.disputes.count, 12),
    });
  }
  return out;
}

/** The profile of one debtor from its facts, as of `now`. Pure. */
export function computeProfile(facts: ProfileFacts, thresholds: BehaviourThresholds, now: Date): DebtorProfile {
  const all = events(facts);
  const invoices = new Map(facts.invoices.map((i) => [i.id, i]));
  const windows = {} as Record<WindowName, WindowCounts>;
  for (const w of WINDOWS) windows[w.name] = windowCounts(all, monthsBefore(now, w.months), invoices);
  const current = currentState(facts);
  const results = flags(all, current, thresholds, now, invoices);
  const offs = results.map((r) => r.offAt).filter((x): x is number => x !== null);
  // Never in the past (month clamping can make the computed instant a day early): at least a day on.
  const recheck = offs.length ? Math.max(Math.min(...offs), now.getTime() + (Math.min(...offs) <= now.getTime() ? DAY_MS : 0)) : null;
  return {
    debtorId: facts.debtorId,
    asOf: now.toISOString(),
    windows,
    current,
    flags: results.map((r) => r.flag),
    recheckAt: recheck === null ? null : new Date(recheck).toISOString(),
  };
}

/** The names of the flags that are on, sorted: the set a `customer.flags_changed` webhook compares. */
export function flagSet(p: Pick<DebtorProfile, 'flags'>): string[] {
  return p.flags.filter((f) => f.on).map((f) => f.name).sort();
}
