/**
 * The simulated agency's books: cases and claims in memory, the ordered feed of updates they
 * produce, and the lifecycle that moves each case one step at a time according to its scenario.
 * No timers and no HTTP here — the simulator decides when a step happens — so every rule below
 * can be exercised directly.
 */
import {
  RESOLUTION_REASONS,
  TERMINAL_STATUSES,
  type AgencyStatus,
  type AgencyUpdate,
  type Arrangement,
  type Money,
  type ResolutionReason,
} from '../../src/domain/types';
import type { Prng } from './prng';
import { pickScenario, scenarioMarker, type Scenario, type ScenarioMix } from './scenarios';
import type { CaseInput, ClaimInput, ControlEvent } from './schemas';

/** A refusal with the HTTP status and error code the simulator answers with. */
export class BookError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra fields of the answer: `detail` inside `error` (e.g. `path`), `top` beside it (e.g. the existing case's `id`). */
    readonly extra: { detail?: Record<string, unknown>; top?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = 'BookError';
  }
}

export interface SimClaim {
  reference: string;
  number?: string;
  principal: Money;
  issuedAt?: string;
  dueAt?: string;
  description?: string;
  failure: ClaimInput['failure'];
  collectionCosts?: ClaimInput['collectionCosts'];
  status: AgencyStatus;
  reason?: ResolutionReason;
  /** Minor units the agency collected. */
  collected: number;
  /** Minor units the customer paid the merchant directly (reported by the hub). */
  paidToMerchant: number;
  addedAt: string;
  /** Put on hold by the merchant: its lifecycle waits until it is resumed. */
  held: boolean;
}

export interface InstallmentPlan {
  installments: number;
  /** Each installment's amount; the last one absorbs the rounding. */
  amounts: number[];
  paid: number;
}

export interface SimCase {
  id: string;
  reference: string;
  creditor: CaseInput['creditor'];
  debtor: CaseInput['debtor'];
  collectionCosts?: CaseInput['collectionCosts'];
  currency: string;
  createdAt: string;
  /** The last case-wide status. */
  status: AgencyStatus;
  reason?: ResolutionReason;
  scenario: Scenario;
  /** partial scenario: whether the unpaid half is finally written off (else the case stays open). */
  partialEnds: boolean;
  /** uncollectible scenario: why. */
  uncollectibleReason: ResolutionReason;
  claims: SimClaim[];
  plan?: InstallmentPlan;
  /** The final case-level update has been sent; nothing more happens on its own. */
  finalized: boolean;
}

export interface CaseBookOptions {
  now: () => Date;
  prng: Prng;
  mix: ScenarioMix;
  /** Called for every update, in seq order, as it is appended to the feed. */
  onUpdate: (update: AgencyUpdate) => void;
}

const UNCOLLECTIBLE_REASONS: ResolutionReason[] = ['debtor_untraceable', 'debtor_insolvent', 'written_off'];
const ARRANGEMENT_INSTALLMENTS = 3;
/** When the first installment of a new arrangement falls due. */
const ARRANGEMENT_FIRST_DUE_DAYS = 14;

export function isTerminal(status: AgencyStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function isResolutionReason(s: string): s is ResolutionReason {
  return (RESOLUTION_REASONS as readonly string[]).includes(s);
}

function pad(n: number): string {
  return String(n).padStart(6, '0');
}

export function openAmount(claim: SimClaim): number {
  return Math.max(0, claim.principal.value - claim.collected - claim.paidToMerchant);
}

type UpdateExtras = Pick<AgencyUpdate, 'reason' | 'amountCollected' | 'arrangement' | 'note'>;

export class CaseBook {
  private readonly cases = new Map<string, SimCase>();
  private readonly byReference = new Map<string, SimCase>();
  private readonly feed: AgencyUpdate[] = [];
  /** New cases get this scenario instead of one drawn from the mix (control call). */
  forcedScenario: Scenario | null = null;

  constructor(private readonly opts: CaseBookOptions) {}

  // ---- reading ------------------------------------------------------------------------------

  get(id: string): SimCase {
    const c = this.cases.get(id);
    if (!c) throw new BookError(404, 'case_not_found', `no case "${id}"`);
    return c;
  }

  all(): SimCase[] {
    return [...this.cases.values()];
  }

  updates(): AgencyUpdate[] {
    return this.feed.slice();
  }

  /** Updates with seq > after, oldest first. seq n sits at index n-1, so this is a slice. */
  page(after: number, limit: number): { updates: AgencyUpdate[]; next: string } {
    const updates = this.feed.slice(after, after + limit);
    return { updates, next: String(updates.length ? updates[updates.length - 1].seq : after) };
  }

  // ---- calls from the hub -------------------------------------------------------------------

  createCase(input: CaseInput): SimCase {
    const existing = this.byReference.get(input.reference);
    if (existing) {
      throw new BookError(409, 'duplicate_reference', `a case with reference "${input.reference}" already exists: ${existing.id}`, {
        top: { id: existing.id },
      });
    }
    // Every case draws the same three numbers, whatever its scenario, so the stream stays
    // aligned and a given seed gives the same cases the same fates.
    const drawn = pickScenario(this.opts.mix, this.opts.prng);
    const partialEnds = this.opts.prng.next() < 0.5;
    const uncollectibleReason = this.opts.prng.pick(UNCOLLECTIBLE_REASONS);
    const scenario = scenarioMarker(input.reference, input.debtor.reference) ?? this.forcedScenario ?? drawn;

    const now = this.nowIso();
    const c: SimCase = {
      id: `case_${pad(this.cases.size + 1)}`,
      reference: input.reference,
      creditor: input.creditor,
      debtor: input.debtor,
      collectionCosts: input.collectionCosts,
      currency: input.claims[0].principal.currency,
      createdAt: now,
      status: 'submitted',
      scenario,
      partialEnds,
      uncollectibleReason,
      claims: input.claims.map((claim) => this.newClaim(claim, now)),
      finalized: false,
    };
    this.cases.set(c.id, c);
    this.byReference.set(c.reference, c);
    this.emit(c, null, 'submitted');
    return c;
  }

  addClaim(c: SimCase, input: ClaimInput): SimClaim {
    if (c.finalized) throw new BookError(409, 'case_closed', `case ${c.id} is closed (${c.status}); open a new case`);
    if (c.claims.some((k) => k.reference === input.reference)) {
      throw new BookError(409, 'duplicate_claim', `case ${c.id} already has a claim "${input.reference}"`);
    }
    if (input.principal.currency !== c.currency) {
      throw new BookError(400, 'invalid_body', `principal.currency: must be ${c.currency}, the currency of case ${c.id}`, {
        detail: { path: 'principal.currency' },
      });
    }
    const claim = this.newClaim(input, this.nowIso());
    c.claims.push(claim);
    this.emit(c, claim, 'submitted');
    return claim;
  }

  /** The customer paid the merchant directly; once nothing is open the claim is paid. */
  reportPayment(c: SimCase, reference: string, amount: Money, detail: { paidAt: string; channel: string }): SimClaim {
    const claim = this.claim(c, reference);
    if (isTerminal(claim.status)) {
      throw new BookError(409, 'claim_closed', `claim "${reference}" of ${c.id} is already ${claim.status}; nothing left to pay`);
    }
    if (amount.currency !== claim.principal.currency) {
      throw new BookError(400, 'invalid_body', `amount.currency: must be ${claim.principal.currency}, the claim's currency`, {
        detail: { path: 'amount.currency' },
      });
    }
    claim.paidToMerchant += amount.value;
    if (openAmount(claim) === 0) {
      claim.status = 'paid';
      claim.reason = 'paid_to_merchant';
      this.emit(c, claim, 'paid', {
        reason: 'paid_to_merchant',
        note: `customer paid the merchant directly (${claim.paidToMerchant} ${claim.principal.currency} in total, last via ${detail.channel} at ${detail.paidAt})`,
      });
      this.finalizeIfDone(c);
    }
    return claim;
  }

  /** The merchant recalls the case, or one claim of it. */
  withdraw(c: SimCase, reasonText: string, claimReference?: string): void {
    // A canonical reason is kept; free text is the merchant's own words, kept as a note.
    const reason: ResolutionReason = isResolutionReason(reasonText) ? reasonText : 'withdrawn_by_merchant';
    const note = isResolutionReason(reasonText) ? undefined : `merchant's reason: ${reasonText}`;
    let targets: SimClaim[];
    if (claimReference !== undefined) {
      const claim = this.claim(c, claimReference);
      if (isTerminal(claim.status)) {
        throw new BookError(409, 'claim_closed', `claim "${claimReference}" of ${c.id} is already ${claim.status}`);
      }
      targets = [claim];
    } else {
      if (c.finalized) throw new BookError(409, 'case_closed', `case ${c.id} is already closed (${c.status})`);
      targets = this.openClaims(c);
    }
    for (const claim of targets) {
      claim.status = 'withdrawn';
      claim.reason = reason;
      this.emit(c, claim, 'withdrawn', { reason, note });
    }
    this.finalizeIfDone(c);
  }

  /**
   * The merchant puts the case, or one claim of it, on hold: each claim concerned becomes
   * `on_hold` (one case-level update when that is every claim) and its lifecycle waits. Returns
   * whether anything changed; holding what is already held is a no-op, not an error.
   */
  hold(c: SimCase, reasonText: string, claimReference?: string): boolean {
    const targets = this.pauseTargets(c, claimReference).filter((k) => !k.held);
    if (targets.length === 0) return false;
    for (const claim of targets) claim.held = true;
    this.emitWide(c, targets, 'on_hold', { note: `on hold: ${reasonText}` }, claimReference !== undefined);
    return true;
  }

  /** The merchant resumes what it put on hold: back to `in_collection`, and the scenario goes on. */
  resume(c: SimCase, reasonText: string, claimReference?: string): boolean {
    const targets = this.pauseTargets(c, claimReference).filter((k) => k.held);
    if (targets.length === 0) return false;
    for (const claim of targets) claim.held = false;
    this.emitWide(c, targets, 'in_collection', { note: `resumed: ${reasonText}` }, claimReference !== undefined);
    return true;
  }

  // ---- control calls ------------------------------------------------------------------------

  /** Emit exactly the update asked for, and bring the books in line with it. */
  force(c: SimCase, ev: ControlEvent): AgencyUpdate {
    const extras: UpdateExtras = { reason: ev.reason, arrangement: ev.arrangement, note: ev.note };
    if (ev.claimReference) {
      const claim = this.claim(c, ev.claimReference);
      this.applyForced(claim, ev);
      extras.amountCollected = ev.amountCollected ?? this.money(c, claim.collected);
      const update = this.emit(c, claim, ev.status, extras);
      this.finalizeIfDone(c);
      return update;
    }
    c.status = ev.status;
    c.reason = ev.reason;
    for (const claim of this.openClaims(c)) this.applyForced(claim, { ...ev, amountCollected: undefined });
    if (ev.amountCollected) extras.amountCollected = ev.amountCollected;
    else if (ev.status === 'paid') extras.amountCollected = this.money(c, this.collected(c));
    // A forced case-wide terminal update is itself the final one.
    if (isTerminal(ev.status)) c.finalized = true;
    return this.emit(c, null, ev.status, extras);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * One lifecycle step of case `c`. Returns whether a later step has anything to do, so the
   * simulator knows whether to keep its timer.
   */
  advance(c: SimCase): boolean {
    if (c.finalized) return false;
    // Every open claim on hold: nothing moves until one is resumed.
    const open = this.activeClaims(c);
    if (open.length === 0 && this.openClaims(c).length > 0) return false;
    if (c.status === 'submitted') {
      this.emitWide(c, open, 'in_collection');
      return true;
    }
    // Claims stacked on later start their own collection first.
    const stacked = open.filter((k) => k.status === 'submitted');
    if (stacked.length) {
      for (const claim of stacked) {
        claim.status = 'in_collection';
        this.emit(c, claim, 'in_collection', { amountCollected: this.money(c, claim.collected) });
      }
      return true;
    }
    if (open.length === 0) {
      this.finalizeIfDone(c);
      return false;
    }

    switch (c.scenario) {
      case 'manual':
        return false;
      case 'paid': {
        const claim = open[0];
        this.collect(c, claim, openAmount(claim), 'paid_in_full');
        this.finalizeIfDone(c);
        return !c.finalized;
      }
      case 'arrangement':
        if (!c.plan) {
          this.agreeArrangement(c, open);
          return true;
        }
        this.payInstallment(c, c.plan);
        this.finalizeIfDone(c);
        return !c.finalized;
      case 'partial': {
        const untouched = open.filter((k) => k.status !== 'partially_paid');
        if (untouched.length) {
          for (const claim of untouched) {
            const half = Math.floor(openAmount(claim) / 2);
            // A claim of 1 cent cannot be halved; it is simply paid.
            if (half === 0) this.collect(c, claim, openAmount(claim), 'paid_in_full');
            else this.collect(c, claim, half);
          }
          this.finalizeIfDone(c);
          return !c.finalized && c.partialEnds;
        }
        if (!c.partialEnds) return false;
        for (const claim of open) this.close(c, claim, 'uncollectible', 'written_off');
        this.finalizeIfDone(c);
        return false;
      }
      case 'disputed': {
        const undisputed = open.filter((k) => k.status !== 'disputed');
        if (undisputed.length) {
          this.emitWide(c, undisputed, 'disputed', { note: 'the debtor disputes the claim' });
          return true;
        }
        for (const claim of open) this.close(c, claim, 'closed', 'disputed_upheld');
        this.finalizeIfDone(c);
        return false;
      }
      case 'uncollectible':
        for (const claim of open) this.close(c, claim, 'uncollectible', c.uncollectibleReason);
        this.finalizeIfDone(c);
        return false;
    }
  }

  // ---- internals ----------------------------------------------------------------------------

  private agreeArrangement(c: SimCase, open: SimClaim[]): void {
    const total = open.reduce((sum, k) => sum + openAmount(k), 0);
    const each = Math.ceil(total / ARRANGEMENT_INSTALLMENTS);
    const amounts: number[] = [];
    for (let left = total; left > 0; left -= each) amounts.push(Math.min(each, left));
    c.plan = { installments: amounts.length, amounts, paid: 0 };
    const firstDueAt = new Date(this.opts.now().getTime() + ARRANGEMENT_FIRST_DUE_DAYS * 86_400_000).toISOString();
    const arrangement: Arrangement = { installments: amounts.length, amount: this.money(c, each), firstDueAt };
    this.emitWide(c, open, 'arrangement', { arrangement });
  }

  /** Oldest claim first, as agencies allocate; a claim covered in full is paid via arrangement. */
  private payInstallment(c: SimCase, plan: InstallmentPlan): void {
    let left = plan.amounts[plan.paid++];
    for (const claim of this.activeClaims(c)) {
      if (left <= 0) break;
      const take = Math.min(left, openAmount(claim));
      if (take === 0) continue;
      left -= take;
      this.collect(c, claim, take, 'paid_via_arrangement');
    }
    // Plan done (or nothing left to pay): claims stacked meanwhile get a new arrangement next step.
    if (plan.paid >= plan.installments || this.activeClaims(c).length === 0) c.plan = undefined;
  }

  /** Collect `amount`; the claim is paid with `paidReason` when that covers it, else partially paid. */
  private collect(c: SimCase, claim: SimClaim, amount: number, paidReason?: ResolutionReason): void {
    claim.collected += amount;
    if (openAmount(claim) === 0 && paidReason) {
      this.close(c, claim, 'paid', paidReason);
      return;
    }
    claim.status = 'partially_paid';
    this.emit(c, claim, 'partially_paid', { amountCollected: this.money(c, claim.collected) });
  }

  private close(c: SimCase, claim: SimClaim, status: AgencyStatus, reason: ResolutionReason): void {
    claim.status = status;
    claim.reason = reason;
    this.emit(c, claim, status, { reason, amountCollected: this.money(c, claim.collected) });
  }

  /**
   * A case-wide status: one case-level update when it concerns every claim, else one per claim,
   * so a claim that already ended is never told it is back in collection.
   */
  private emitWide(c: SimCase, claims: SimClaim[], status: AgencyStatus, extras: UpdateExtras = {}, claimLevel = false): void {
    if (!claimLevel) c.status = status;
    for (const claim of claims) claim.status = status;
    if (!claimLevel && claims.length === c.claims.length) {
      this.emit(c, null, status, extras);
      return;
    }
    for (const claim of claims) this.emit(c, claim, status, { ...extras, amountCollected: this.money(c, claim.collected) });
  }

  /** Once every claim has ended, one case-level update says how the case ended. */
  private finalizeIfDone(c: SimCase): boolean {
    if (c.finalized || c.claims.some((k) => !isTerminal(k.status))) return false;
    const statuses = new Set(c.claims.map((k) => k.status));
    const status: AgencyStatus = statuses.size === 1 ? c.claims[0].status : 'closed';
    const reasons = new Set(c.claims.map((k) => k.reason));
    const reason = reasons.size === 1 ? c.claims[0].reason : undefined;
    c.status = status;
    c.reason = reason;
    c.finalized = true;
    this.emit(c, null, status, { reason, amountCollected: this.money(c, this.collected(c)) });
    return true;
  }

  private applyForced(claim: SimClaim, ev: ControlEvent): void {
    if (ev.amountCollected) claim.collected = ev.amountCollected.value;
    else if (ev.status === 'paid') claim.collected += openAmount(claim);
    claim.status = ev.status;
    claim.reason = ev.reason;
    claim.held = ev.status === 'on_hold';
  }

  private emit(c: SimCase, claim: SimClaim | null, status: AgencyStatus, extras: UpdateExtras = {}): AgencyUpdate {
    const seq = this.feed.length + 1;
    // Optional fields absent rather than undefined, so the JSON carries only what is known.
    const update: AgencyUpdate = {
      id: `upd_${pad(seq)}`,
      seq,
      caseId: c.id,
      caseReference: c.reference,
      claimReference: claim ? claim.reference : null,
      status,
      ...(extras.reason ? { reason: extras.reason } : {}),
      ...(extras.amountCollected ? { amountCollected: extras.amountCollected } : {}),
      ...(extras.arrangement ? { arrangement: extras.arrangement } : {}),
      ...(extras.note ? { note: extras.note } : {}),
      occurredAt: this.nowIso(),
    };
    this.feed.push(update);
    this.opts.onUpdate(update);
    return update;
  }

  private newClaim(input: ClaimInput, now: string): SimClaim {
    return {
      reference: input.reference,
      number: input.number,
      principal: input.principal,
      issuedAt: input.issuedAt,
      dueAt: input.dueAt,
      description: input.description,
      failure: input.failure,
      ...(input.collectionCosts ? { collectionCosts: input.collectionCosts } : {}),
      status: 'submitted',
      collected: 0,
      paidToMerchant: 0,
      addedAt: now,
      held: false,
    };
  }

  private claim(c: SimCase, reference: string): SimClaim {
    const claim = c.claims.find((k) => k.reference === reference);
    if (!claim) throw new BookError(404, 'claim_not_found', `case ${c.id} has no claim "${reference}"`);
    return claim;
  }

  private openClaims(c: SimCase): SimClaim[] {
    return c.claims.filter((k) => !isTerminal(k.status));
  }

  /** Open claims whose lifecycle runs (not on hold). */
  private activeClaims(c: SimCase): SimClaim[] {
    return this.openClaims(c).filter((k) => !k.held);
  }

  /** What a hold or resume concerns: one claim (which must not have ended), or every open claim of an open case. */
  private pauseTargets(c: SimCase, claimReference?: string): SimClaim[] {
    if (claimReference !== undefined) {
      const claim = this.claim(c, claimReference);
      if (isTerminal(claim.status)) throw new BookError(409, 'claim_closed', `claim "${claimReference}" of ${c.id} is already ${claim.status}`);
      return [claim];
    }
    if (c.finalized) throw new BookError(409, 'case_closed', `case ${c.id} is already closed (${c.status})`);
    return this.openClaims(c);
  }

  private collected(c: SimCase): number {
    return c.claims.reduce((sum, k) => sum + k.collected, 0);
  }

  private money(c: SimCase, value: number): Money {
    return { value, currency: c.currency };
  }

  private nowIso(): string {
    return this.opts.now().toISOString();
  }
}
