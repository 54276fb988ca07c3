/**
 * The commands of the money model test (fast-check `fc.commands`): PSP events (failures soft and
 * final, payments, refunds, disputes, voids) across Stripe, Mollie, Adyen and GoCardless, agency
 * updates (accepted, partial payments, arrangements and instalments, ends with each resolution,
 * case-level updates, late ones), merchant actions (withdraw, hold, resume, reminder) and the
 * passage of time. Every command runs against the real hub, waits until it has settled, then
 * checks every invariant (./invariants.ts).
 *
 * Targets are indices, resolved when the command runs (an invoice of this history, a live claim
 * the hub has now): a command whose target does not exist does nothing, so any history is
 * valid and fast-check can shrink freely.
 */
import fc from 'fast-check';
import type { AsyncCommand } from 'fast-check';
import { PROVIDERS, type Provider, type PspInvoice, type World, pspFail, pspPay, pspRefund, pspDispute, pspVoid, pushUpdate, merchantCall, advance, settle, DAY_MS } from './world';
import { Observer, PENDING_INVARIANTS, type Violation } from './invariants';
import type { AgencyStatus, ResolutionReason } from '../../src/domain/types';

export interface ModelInvoice extends PspInvoice {
  paid: boolean;
  /** Refunded, disputed or voided at the PSP: never to be collected. */
  gone: boolean;
}

export interface Model {
  run: string;
  invoices: ModelInvoice[];
}

export interface Real {
  w: World;
  obs: Observer;
  /** Hub invoice ids the PSP took back (refund, dispute, void). */
  uncollectible: Set<string>;
  step: number;
  /** Violations of pending invariants, kept for the report. */
  pending: Violation[];
  /** Every command run so far in this history, for the failure message. */
  trail: string[];
}

const DEBTORS = 2;

function customerRef(provider: Provider, run: string, debtor: number): string {
  switch (provider) {
    case 'stripe': return `cus_${run}d${debtor}`;
    case 'mollie': return `cst_${run}d${debtor}`;
    case 'adyen': return `shopper-${run}-d${debtor}`;
    case 'gocardless': return `CU${run}D${debtor}`.toUpperCase();
  }
}

/** The hub's invoice rows of one model invoice (a Mollie re-payment may be a row of its own). */
export async function hubInvoiceIds(w: World, inv: PspInvoice): Promise<string[]> {
  const refs = [inv.ref, ...inv.paymentRefs, ...(inv.paidRef ? [inv.paidRef] : [])];
  const r = await w.stack.hub.ctx.db.query<{ id: string }>(
    `SELECT id FROM invoices WHERE merchant_id = 'acme' AND provider = $1 AND (provider_ref = ANY($2)
        OR id IN (SELECT invoice_id FROM invoice_payment_refs WHERE merchant_id = 'acme' AND provider = $1 AND payment_ref = ANY($2)))
      ORDER BY created_at, id`,
    [inv.provider, refs],
  );
  return r.rows.map((x) => x.id);
}

/** Settle, then check every invariant; a violation of a landed invariant fails the history. */
/** A minute passes before each event: nothing in life happens at the same millisecond. */
function tick(r: Real): void {
  r.w.clock.advance(60_000);
}

async function afterStep(r: Real, what: string): Promise<void> {
  r.step++;
  r.trail.push(what);
  await settle(r.w, `the hub to settle after ${what}`);
  const found = await r.obs.check({ now: r.w.clock.now(), uncollectible: r.uncollectible, step: r.step });
  const strict = process.env.MONEY_STRICT === '1';
  const failing = found.filter((v) => strict || !PENDING_INVARIANTS[v.invariant]);
  r.pending.push(...found.filter((v) => !strict && PENDING_INVARIANTS[v.invariant]));
  if (failing.length) {
    const message = `money invariant broken after step ${r.step} (${what}):\n${failing.map((v) => `  [${v.invariant}] ${v.message}`).join('\n')}\nhistory:\n${r.trail.map((t, i) => `  ${i + 1}. ${t}`).join('\n')}`;
    // Shown at once: shrinking re-runs histories for a while before fast-check reports.
    if (process.env.MONEY_VERBOSE) console.error(message);
    throw new Error(`money invariant broken after step ${r.step} (${what}):\n${failing.map((v) => `  [${v.invariant}] ${v.message}`).join('\n')}\nhistory:\n${r.trail.map((t, i) => `  ${i + 1}. ${t}`).join('\n')}`);
  }
}

const pick = <T>(xs: T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);

// ---- PSP ------------------------------------------------------------------------------------------

class NewInvoice implements AsyncCommand<Model, Real> {
  constructor(readonly provider: Provider, readonly debtor: number, readonly amount: number, readonly final: boolean) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tick(r);
    const n = m.invoices.length;
    const ref = this.provider === 'stripe' ? `in_${m.run}i${n}` : this.provider === 'gocardless' ? `INV-${m.run}-${n}`.toUpperCase() : `INV-${m.run}-${n}`;
    const inv: ModelInvoice = { provider: this.provider, ref, customerRef: customerRef(this.provider, m.run, this.debtor), debtorRef: `debtor-${m.run}-${this.debtor}`, amount: this.amount, paymentRefs: [], paid: false, gone: false };
    m.invoices.push(inv);
    await pspFail(r.w, inv, this.final);
    await afterStep(r, this.toString());
  }
  toString() { return `new ${this.provider} invoice of debtor ${this.debtor} for ${this.amount}, failed${this.final ? ' for good' : ' (PSP retries)'}`; }
}

class Fail implements AsyncCommand<Model, Real> {
  constructor(readonly i: number, readonly final: boolean) {}
  check = (m: Readonly<Model>) => m.invoices.some((x) => !x.paid && !x.gone);
  async run(m: Model, r: Real) {
    const inv = pick(m.invoices.filter((x) => !x.paid && !x.gone), this.i)!;
    tick(r);
    await pspFail(r.w, inv, this.final);
    await afterStep(r, `${this} (${inv.ref})`);
  }
  toString() { return `invoice #${this.i} fails again${this.final ? ' for good' : ''}`; }
}

class Pay implements AsyncCommand<Model, Real> {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>) => m.invoices.some((x) => !x.paid && !x.gone);
  async run(m: Model, r: Real) {
    const inv = pick(m.invoices.filter((x) => !x.paid && !x.gone), this.i)!;
    // Which claims are live now decides what the agency must be told.
    tick(r);
    const live = await r.obs.liveClaimsOf(await hubInvoiceIds(r.w, inv));
    await pspPay(r.w, inv);
    inv.paid = true;
    for (const c of live) r.obs.expectedReports.push({ claimId: c.id, caseId: c.case_id, invoiceId: c.invoice_id, step: r.step + 1 });
    await afterStep(r, `${this} (${inv.provider} ${inv.ref}${live.length ? `, live claim ${live.map((c) => c.id).join(',')}` : ''})`);
  }
  toString() { return `debtor pays invoice #${this.i} through the PSP`; }
}

class TakeBack implements AsyncCommand<Model, Real> {
  constructor(readonly how: 'refund' | 'dispute', readonly i: number) {}
  check = (m: Readonly<Model>) => m.invoices.some((x) => x.paid && !x.gone);
  async run(m: Model, r: Real) {
    const inv = pick(m.invoices.filter((x) => x.paid && !x.gone), this.i)!;
    tick(r);
    await (this.how === 'refund' ? pspRefund : pspDispute)(r.w, inv);
    inv.gone = true;
    for (const id of await hubInvoiceIds(r.w, inv)) r.uncollectible.add(id);
    await afterStep(r, `${this} (${inv.provider} ${inv.ref})`);
  }
  toString() { return `paid invoice #${this.i} ${this.how === 'refund' ? 'refunded' : 'disputed (chargeback)'}`; }
}

class Void implements AsyncCommand<Model, Real> {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>) => m.invoices.some((x) => x.provider === 'stripe' && !x.paid && !x.gone);
  async run(m: Model, r: Real) {
    const inv = pick(m.invoices.filter((x) => x.provider === 'stripe' && !x.paid && !x.gone), this.i)!;
    tick(r);
    await pspVoid(r.w, inv);
    inv.gone = true;
    for (const id of await hubInvoiceIds(r.w, inv)) r.uncollectible.add(id);
    await afterStep(r, `${this} (${inv.ref})`);
  }
  toString() { return `merchant voids Stripe invoice #${this.i}`; }
}

// ---- time -----------------------------------------------------------------------------------------

export class Advance implements AsyncCommand<Model, Real> {
  constructor(readonly hours: number) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    await advance(r.w, this.hours * 3600_000);
    await afterStep(r, this.toString());
  }
  toString() { return `${this.hours} hours pass`; }
}

// ---- the agency -----------------------------------------------------------------------------------

export const AGENCY_ACTIONS = ['in_collection', 'partial', 'arrangement', 'instalment', 'paid', 'uncollectible', 'closed', 'disputed', 'case_end'] as const;
export type AgencyAction = (typeof AGENCY_ACTIONS)[number];

class Agency implements AsyncCommand<Model, Real> {
  constructor(readonly action: AgencyAction, readonly claim: number, readonly fraction: number, readonly reason: number, readonly lagHours: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tick(r);
    const db = r.w.stack.hub.ctx.db;
    const live = (await db.query<{ id: string; case_id: string; partner_ref: string; principal: string }>(
      `SELECT c.id, c.case_id, k.partner_ref, c.principal::text FROM claims c JOIN cases k ON k.id = c.case_id JOIN customers cu ON cu.id = k.customer_id
        WHERE c.merchant_id = 'acme' AND c.status NOT IN ('paid','withdrawn','uncollectible','closed') AND k.partner_ref IS NOT NULL AND cu.provider_ref ILIKE $1
        ORDER BY c.created_at, c.id`,
      [`%${m.run}%`],
    )).rows;
    const claim = pick(live, this.claim);
    if (!claim) return afterStep(r, `${this}: no live claim, nothing sent`);
    const principal = Number(claim.principal);
    const books = r.w.agency.collected;
    const had = books.get(claim.id) ?? 0;
    const occurredAt = new Date(r.w.clock.now().getTime() - this.lagHours * 3600_000).toISOString();
    const base = { caseId: claim.partner_ref, caseReference: claim.case_id, claimReference: claim.id as string | null, occurredAt };
    const money = (value: number) => ({ value, currency: 'EUR' });
    const endReasons: Record<string, ResolutionReason[]> = {
      uncollectible: ['debtor_untraceable', 'debtor_insolvent', 'debtor_deceased', 'written_off', 'time_barred'],
      closed: ['disputed_upheld', 'credit_note', 'written_off'],
    };
    let sent: { status: AgencyStatus; reason?: ResolutionReason; amountCollected?: { value: number; currency: string }; arrangement?: unknown; claimReference?: null };
    switch (this.action) {
      case 'in_collection':
      case 'disputed':
        sent = { status: this.action };
        break;
      case 'partial': {
        const total = Math.min(principal - 1, had + Math.max(1, Math.floor((principal - had) * this.fraction)));
        if (total <= had) return afterStep(r, `${this}: nothing left to collect partially`);
        books.set(claim.id, total);
        sent = { status: 'partially_paid', amountCollected: money(total) };
        break;
      }
      case 'arrangement':
        sent = { status: 'arrangement', arrangement: { installments: 3, amount: money(Math.ceil(principal / 3)), firstDueAt: new Date(r.w.clock.now().getTime() + 14 * DAY_MS).toISOString() } };
        break;
      case 'instalment': {
        const total = Math.min(principal, had + Math.ceil(principal / 3));
        books.set(claim.id, total);
        sent = total >= principal ? { status: 'paid', reason: 'paid_via_arrangement', amountCollected: money(total) } : { status: 'partially_paid', amountCollected: money(total) };
        break;
      }
      case 'paid':
        books.set(claim.id, principal);
        sent = { status: 'paid', reason: 'paid_in_full', amountCollected: money(principal) };
        break;
      case 'uncollectible':
      case 'closed': {
        const reasons = endReasons[this.action];
        sent = { status: this.action, reason: reasons[this.reason % reasons.length], ...(had ? { amountCollected: money(had) } : {}) };
        break;
      }
      case 'case_end': {
        // A case-level end: every claim of the case at once (the agency closes the file).
        const statuses: [AgencyStatus, ResolutionReason][] = [['uncollectible', 'debtor_untraceable'], ['closed', 'written_off'], ['uncollectible', 'debtor_insolvent']];
        const [status, reason] = statuses[this.reason % statuses.length];
        sent = { status, reason, claimReference: null };
        break;
      }
    }
    const u = await pushUpdate(r.w, { ...base, ...sent } as never);
    await afterStep(r, `agency: ${u.claimReference ? `claim ${u.claimReference}` : `case ${u.caseReference}`} ${u.status}${u.reason ? ` (${u.reason})` : ''}${u.amountCollected ? ` collected ${u.amountCollected.value}` : ''}${this.lagHours ? `, dated ${this.lagHours} h ago` : ''}`);
  }
  toString() { return `agency ${this.action} on live claim #${this.claim}`; }
}

// ---- the merchant ---------------------------------------------------------------------------------

export const MERCHANT_ACTIONS = ['withdraw', 'hold', 'resume', 'reminder', 'hold_until'] as const;
export type MerchantActionName = (typeof MERCHANT_ACTIONS)[number];

class Merchant implements AsyncCommand<Model, Real> {
  constructor(readonly action: MerchantActionName, readonly i: number, readonly daysAgo: number) {}
  check = (m: Readonly<Model>) => m.invoices.length > 0;
  async run(m: Model, r: Real) {
    const inv = pick(m.invoices, this.i)!;
    tick(r);
    const id = (await hubInvoiceIds(r.w, inv))[0];
    if (!id) return afterStep(r, `${this}: the hub has no such invoice`);
    const now = r.w.clock.now();
    // hold_until: "the customer called and promised to pay by then" (hole 9), daysAgo days ahead.
    const until = new Date(now.getTime() + (this.daysAgo + 1) * DAY_MS);
    // A letter is sent after the invoice failed (the hub refuses a date before it fell due).
    const failedAt = (await r.w.stack.hub.ctx.db.query<{ t: Date | null }>(`SELECT COALESCE(due_at, first_failed_at) AS t FROM invoices WHERE id = $1`, [id])).rows[0]?.t;
    const sentAt = new Date(Math.max(now.getTime() - this.daysAgo * DAY_MS, failedAt ? new Date(failedAt).getTime() : 0));
    const body = this.action === 'reminder'
      ? { sentAt: sentAt.toISOString() }
      : this.action === 'hold_until' ? { reason: 'customer promised to pay', holdUntil: until.toISOString() } : { reason: `model test ${this.action}` };
    const status = await merchantCall(r.w, `/v1/invoices/${id}/${this.action === 'hold_until' ? 'hold' : this.action}`, body);
    if (status < 300 && this.action === 'hold_until') r.obs.holds.set(id, { until, setAt: now });
    if (status < 300 && this.action === 'resume') r.obs.holds.delete(id);
    await afterStep(r, `${this} (${inv.provider} ${inv.ref}): ${status}`);
  }
  toString() {
    const how = this.action === 'reminder' ? ` sent ${this.daysAgo} days ago` : this.action === 'hold_until' ? ` ${this.daysAgo + 1} days ahead` : '';
    return `merchant ${this.action}${how} on invoice #${this.i}`;
  }
}

// ---- the generator --------------------------------------------------------------------------------

/** A new failed invoice: the opening moves of every history, and a command among the others. */
export const newInvoiceArbitrary = (): fc.Arbitrary<AsyncCommand<Model, Real>> =>
  fc.tuple(fc.constantFrom(...PROVIDERS), fc.nat({ max: DEBTORS - 1 }), fc.constantFrom(1500, 4900, 12000, 30000), fc.boolean()).map(([p, d, a, f]) => new NewInvoice(p, d, a, f));

export function commandArbitraries(): fc.Arbitrary<AsyncCommand<Model, Real>>[] {
  const idx = fc.nat({ max: 7 });
  return [
    newInvoiceArbitrary(),
    fc.tuple(idx, fc.boolean()).map(([i, f]) => new Fail(i, f)),
    idx.map((i) => new Pay(i)),
    fc.tuple(fc.constantFrom('refund' as const, 'dispute' as const), idx).map(([h, i]) => new TakeBack(h, i)),
    idx.map((i) => new Void(i)),
    // Time twice as often as the rest: hand-overs need the notice term (about 17 days) to pass.
    fc.constantFrom(1, 24, 72, 7 * 24, 15 * 24, 20 * 24).map((h) => new Advance(h)),
    fc.constantFrom(6, 48, 10 * 24, 18 * 24, 31 * 24).map((h) => new Advance(h)),
    fc.tuple(fc.constantFrom(...AGENCY_ACTIONS), idx, fc.double({ min: 0.1, max: 0.9, noNaN: true }), fc.nat({ max: 4 }), fc.constantFrom(0, 0, 0, 2, 30)).map(([a, c, f, rs, lag]) => new Agency(a, c, f, rs, lag)),
    fc.tuple(fc.constantFrom(...MERCHANT_ACTIONS), idx, fc.nat({ max: 20 })).map(([a, i, d]) => new Merchant(a, i, d)),
    // The letter's date on its own as well: without evidence an NL consumer waits for it (hole 4).
    fc.tuple(idx, fc.nat({ max: 20 })).map(([i, d]) => new Merchant('reminder', i, d)),
  ];
}
