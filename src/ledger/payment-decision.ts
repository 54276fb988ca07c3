/**
 * The money core of the PSP side of the ledger, as pure functions over plain state: what one PSP
 * payment does to an invoice that the hub already knows — its status and amounts, the claim it is
 * in, the calls owed to the agency, the timeline rows and the owed-back record. No SQL here: the
 * ledger's edge (src/ledger/payment-ledger.ts applyPaymentEvent) loads the state, calls
 * decidePaymentEvent and writes what it returns; the property tests (test/unit/payment-decision.test.ts)
 * run it over random histories.
 *
 * The rules it keeps (README, "Nobody pays twice"; RELIABILITY.md, "Money invariants"):
 *  - a PSP payment on an invoice whose claim is live is ALWAYS reported to the agency at once
 *    (`agency.report_payment`, the new money only), also when the agency already collected part
 *    of it: the claim ends (paid / paid_to_merchant) once PSP-paid + agency-collected covers what
 *    was due, and otherwise stays live with the payment reported;
 *  - PSP-paid + agency-collected beyond what was due is owed back to the debtor, recorded once
 *    (src/ledger/owed-back.ts);
 *  - an older event never overwrites a newer status (ordered by the PSP's occurredAt); amounts only
 *    grow, so they are kept from any event.
 */
import type { PaymentEvent } from '../domain/types';
import type { HistoryEntry } from './history';
import type { InvoiceRow } from './rows';
import { partnerLane, type OutboxInput } from '../outbox/outbox';
import { owedBackChange } from './owed-back';
import { handoverDueAt } from '../policy/handover-policy';
import type { Policy } from '../config/schema';

/** The invoice as the decision needs it (numbers as numbers, times as ISO strings). */
export interface InvoiceState {
  id: string;
  merchantId: string;
  customerId: string;
  currency: string;
  status: string;
  resolution: string | null;
  resolvedBy: string | null;
  amountDue: number;
  amountPaid: number;
  amountCollected: number;
  amountOwedBack: number;
  failureCount: number;
  /** The PSP time of the newest event applied (ordering). */
  lastEventAt: string | null;
  failureCode: string | null;
  firstFailedAt: string | null;
  lastFailedAt: string | null;
  handoverDueAt: string | null;
}

/** The invoice's claim while it is with an agency (not ended). */
export interface LiveClaim {
  id: string;
  caseId: string;
  partnerId: string;
  status: string;
}

/** The hub's own write-back coming back from the PSP (src/ledger/payment-ledger.ts writeBackEcho). */
export interface EchoFacts {
  outboxId: number;
  action: 'pay' | 'mark_uncollectible';
  matchedBy: 'idempotency_key' | 'paid_out_of_band';
}

export interface PaymentState {
  invoice: InvoiceState;
  liveClaim: LiveClaim | null;
  echo: EchoFacts | null;
  /** The merchant's hand-over policy (a final failure's hand-over date). */
  policy?: Pick<Policy, 'handoverAfterDays'>;
  /** A chargeback: the invoice was already disputed by this PSP (its status, or a `disputed` row on its timeline). */
  disputedBefore?: boolean;
}

/** The failure facts a failure event writes (columns failure_*, payment_method). */
export interface FailurePatch {
  failureReason: string;
  failureMessage: string | null;
  failureRetryable: boolean;
  failureFinal: boolean;
  paymentMethod: string;
}

export type InvoicePatch = Partial<
  Pick<InvoiceState, 'status' | 'resolution' | 'resolvedBy' | 'amountDue' | 'amountPaid' | 'amountCollected' | 'amountOwedBack' | 'lastEventAt'
    | 'failureCode' | 'failureCount' | 'firstFailedAt' | 'lastFailedAt' | 'handoverDueAt'> & FailurePatch
>;

export interface PaymentDecision {
  invoicePatch: InvoicePatch;
  /** The claim's end, when the payment ends it. */
  claimPatch: { id: string; status: string; resolution: string } | null;
  history: HistoryEntry[];
  outbox: OutboxInput[];
  /** A case whose status must be derived again from its claims (src/ledger/case-status.ts). */
  refreshCaseId: string | null;
  /** One line for the log and the event's sync-log row. */
  note: string;
  /** The customer's last failure should be this event's (a chargeback on an invoice not in a case). */
  customerFailure?: boolean;
}

/** Invoice statuses in which the hub may still hand the invoice over. */
export const BEFORE_HANDOVER = ['open', 'pending_handover'];

const num = (v: unknown) => Number(v ?? 0);
const isoOrNull = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);

/** The plain state of an invoice row (bigints come back as strings from pg, numbers from PGlite). */
export function invoiceStateOf(row: InvoiceRow & { amount_owed_back?: number | string | null }): InvoiceState {
  return {
    id: row.id, merchantId: row.merchant_id, customerId: row.customer_id, currency: row.currency, status: row.status,
    resolution: row.resolution, resolvedBy: row.resolved_by,
    amountDue: num(row.amount_due), amountPaid: num(row.amount_paid), amountCollected: num(row.amount_collected), amountOwedBack: num(row.amount_owed_back),
    failureCount: num(row.failure_count), lastEventAt: isoOrNull(row.last_event_at),
    failureCode: row.failure_code, firstFailedAt: isoOrNull(row.first_failed_at), lastFailedAt: isoOrNull(row.last_failed_at), handoverDueAt: isoOrNull(row.handover_due_at),
  };
}

/** Is the event at least as new as the newest one applied to the invoice? */
export function isNewerEvent(invoice: Pick<InvoiceState, 'lastEventAt'>, occurredAt: string): boolean {
  return !invoice.lastEventAt || new Date(occurredAt).getTime() >= new Date(invoice.lastEventAt).getTime();
}

const nothing = (note: string): PaymentDecision => ({ invoicePatch: {}, claimPatch: null, history: [], outbox: [], refreshCaseId: null, note });

/**
 * What one PSP event does to an invoice the hub knows. Today the payment (`payment_succeeded`) is
 * decided here; the other kinds keep their branches in applyPaymentEvent.
 */
export function decidePaymentEvent(state: PaymentState, ev: PaymentEvent): PaymentDecision {
  if (ev.kind === 'payment_succeeded') return decidePayment(state, ev);
  if ((ev.kind === 'payment_failed' && ev.failure) || ev.kind === 'invoice_uncollectible') return decideFailure(state, ev);
  if (ev.kind === 'invoice_voided' || ev.kind === 'chargeback' || ev.kind === 'refund') return decideReversal(state, ev);
  throw new Error(`decidePaymentEvent: ${ev.kind}${ev.kind === 'payment_failed' ? ' without failure facts' : ''} is decided in applyPaymentEvent`);
}

/**
 * A failure (or the PSP's uncollectible mark) on an invoice the hub knows. The newest failure's
 * facts win (by the PSP's time); the hand-over is counted from the first failure; a final failure
 * of an unpaid invoice makes it pending_handover with a hand-over check owed at its due date; a
 * failure after a payment (a SEPA return after settlement) reopens a recovered or settled invoice.
 * An older failure changes no status.
 */
function decideFailure({ invoice, echo, policy }: PaymentState, ev: PaymentEvent): PaymentDecision {
  const at = ev.occurredAt;
  if (echo) {
    const d = nothing(`echo of our write-back (${echo.action}, delivery ${echo.outboxId}): not a new fact, invoice stays ${invoice.status}`);
    d.history.push({
      merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: 'psp_writeback_echo', reason: null, source: ev.provider, occurredAt: at,
      detail: { event: ev.providerEventType, eventId: ev.providerEventId, action: echo.action, writeBackOutboxId: echo.outboxId, matchedBy: echo.matchedBy, invoiceStatus: invoice.status },
    });
    return d;
  }
  if (!policy) throw new Error('decidePaymentEvent: a failure needs the merchant policy');
  const occurred = new Date(at);
  // A failure event that carries no failure facts says nothing about whether the PSP will retry:
  // only an uncollectible mark makes it final.
  const failure = ev.failure ?? { code: ev.kind === 'invoice_uncollectible' ? 'marked_uncollectible' : 'unknown', reason: 'unknown' as const, retryable: false, final: ev.kind === 'invoice_uncollectible' };
  const final = ev.kind === 'invoice_uncollectible' ? true : failure.final;
  const isNewestFailure = !invoice.lastFailedAt || occurred.getTime() >= Date.parse(invoice.lastFailedAt);
  const firstFailedAt = invoice.firstFailedAt && Date.parse(invoice.firstFailedAt) < occurred.getTime() ? new Date(invoice.firstFailedAt) : occurred;
  // An uncollectible mark keeps the failure reason that the payment attempts gave.
  const keepReason = ev.kind === 'invoice_uncollectible' && !!invoice.failureCode;
  const d = nothing('');
  const p = d.invoicePatch;
  if (isNewestFailure && !keepReason) Object.assign(p, { failureCode: failure.code, failureReason: failure.reason, failureMessage: failure.message ?? null, failureRetryable: failure.retryable });
  if (isNewestFailure) p.failureFinal = final;
  if (ev.kind === 'payment_failed') p.failureCount = invoice.failureCount + 1;
  p.firstFailedAt = firstFailedAt.toISOString();
  if (isNewestFailure) p.lastFailedAt = occurred.toISOString();
  if (ev.invoice && isNewestFailure) p.amountDue = ev.invoice.amountDue.value;
  if (ev.payment?.method) p.paymentMethod = ev.payment.method;
  d.history.push({
    merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: 'payment_failed', reason: failure.reason, source: ev.provider, occurredAt: at,
    detail: { event: ev.providerEventType, eventId: ev.providerEventId, code: failure.code, final, attempt: ev.payment?.attempt, nextAttemptAt: failure.nextAttemptAt },
  });
  const newer = isNewerEvent(invoice, at);
  if (newer) p.lastEventAt = occurred.toISOString();
  const statusEntry = (status: string, detail: Record<string, unknown> = {}): HistoryEntry => ({
    merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status, reason: null, source: ev.provider, occurredAt: at,
    detail: { event: ev.providerEventType, eventId: ev.providerEventId, ...detail },
  });
  let status = invoice.status;
  if (newer && (status === 'recovered' || status === 'settled')) {
    // Paid, then returned (a SEPA R-transaction after settlement): the money is gone again.
    status = 'open';
    Object.assign(p, { amountPaid: 0, resolution: null, resolvedBy: null });
  }
  if (newer && isNewestFailure && !final && status === 'pending_handover') {
    // The PSP tries again after all (smart retries turned back on, the merchant's manual retry):
    // while it does, the invoice is not due for hand-over; a later final failure makes it due again
    // (counted from the first failure). Left pending, no check would take it and nothing would explain it.
    status = 'open';
    p.handoverDueAt = null;
  }
  if (newer && final && (status === 'open' || status === 'pending_handover')) {
    const due = handoverDueAt(firstFailedAt, policy);
    if (invoice.status !== 'pending_handover' || !invoice.handoverDueAt || Date.parse(invoice.handoverDueAt) !== due.getTime()) p.handoverDueAt = due.toISOString();
    if (invoice.status !== 'pending_handover') {
      Object.assign(p, { status: 'pending_handover', resolution: null, resolvedBy: null });
      d.history.push(statusEntry('pending_handover', { handoverDueAt: due.toISOString() }));
    }
    // Idempotent per invoice and moment: the same failure again owes nothing new.
    d.outbox.push({
      kind: 'handover_check', lane: 'hub', payload: { customerId: invoice.customerId }, idempotencyKey: `handover-${invoice.id}-${due.getTime()}`,
      merchantId: invoice.merchantId, customerId: invoice.customerId, invoiceId: invoice.id, dueAt: due,
    });
    d.note = `final failure: hand-over due ${due.toISOString()}`;
    return d;
  }
  if (status !== invoice.status) {
    Object.assign(p, { status, resolution: null, resolvedBy: null });
    d.history.push(statusEntry(status));
  }
  d.note = final ? `failure recorded (invoice is ${status})` : 'failure recorded; the PSP will retry';
  return d;
}

function decidePayment({ invoice, liveClaim, echo }: PaymentState, ev: PaymentEvent): PaymentDecision {
  const at = ev.occurredAt;
  if (echo) {
    // Our own "paid out of band" coming back: the agency's collection is already counted
    // (amount_collected); counting it as paid to the merchant too, or reporting it, would double it.
    const d = nothing(`echo of our write-back (${echo.action}, delivery ${echo.outboxId}): not a new payment, invoice stays ${invoice.status}`);
    d.history.push({
      merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: 'psp_writeback_echo', reason: null, source: ev.provider, occurredAt: at,
      detail: { event: ev.providerEventType, eventId: ev.providerEventId, action: echo.action, writeBackOutboxId: echo.outboxId, matchedBy: echo.matchedBy, invoiceStatus: invoice.status },
    });
    return d;
  }
  const newer = isNewerEvent(invoice, at);
  // What the PSP says is paid on this invoice so far. Stripe reports the invoice's running total,
  // and one payment comes as several events (invoice.paid and invoice.payment_succeeded;
  // GoCardless confirmed and paid_out): the highest total counts, so nothing is counted twice.
  const reported = ev.payment?.amount?.value ?? invoice.amountDue;
  const amountPaid = Math.max(invoice.amountPaid, reported);
  const added = amountPaid - invoice.amountPaid;
  const d = nothing('');
  if (added > 0) d.invoicePatch.amountPaid = amountPaid;
  if (newer) d.invoicePatch.lastEventAt = new Date(at).toISOString();
  const statusEntry = (status: string, resolution: string | null): HistoryEntry => ({
    merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status, reason: resolution, source: ev.provider, occurredAt: at,
    detail: { event: ev.providerEventType, eventId: ev.providerEventId },
  });

  if (liveClaim) {
    if (added <= 0) {
      d.note = `payment already reported to the partner (the PSP reports ${amountPaid} ${invoice.currency} paid, as before)`;
    } else {
      // Paid through the PSP while the agency collects: tell the agency at once, whatever it has
      // collected meanwhile, so nobody is collected twice (contract §5, POST …/payments).
      d.outbox.push({
        kind: 'agency.report_payment',
        lane: partnerLane(liveClaim.partnerId),
        payload: { caseId: liveClaim.caseId, claimId: liveClaim.id, amount: { value: added, currency: invoice.currency }, paidAt: at, channel: ev.provider },
        idempotencyKey: `payment-${liveClaim.id}-${ev.providerEventId}`,
        merchantId: ev.merchantId,
        customerId: invoice.customerId,
        invoiceId: invoice.id,
        caseId: liveClaim.caseId,
      });
      const covered = amountPaid + invoice.amountCollected >= invoice.amountDue;
      if (covered) {
        d.claimPatch = { id: liveClaim.id, status: 'paid', resolution: 'paid_to_merchant' };
        d.history.push({ merchantId: ev.merchantId, entity: 'claim', entityId: liveClaim.id, status: 'paid', reason: 'paid_to_merchant', source: ev.provider, occurredAt: at });
        Object.assign(d.invoicePatch, { status: 'paid', resolution: 'paid_to_merchant', resolvedBy: ev.provider });
        d.history.push(statusEntry('paid', 'paid_to_merchant'));
        d.refreshCaseId = liveClaim.caseId;
        d.note = 'paid after hand-over: reported to the partner';
      } else {
        const open = invoice.amountDue - amountPaid - invoice.amountCollected;
        d.history.push({
          merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: 'partly_paid_to_merchant', reason: null, source: ev.provider, occurredAt: at,
          detail: { event: ev.providerEventType, eventId: ev.providerEventId, amount: { value: added, currency: invoice.currency }, paidToMerchant: amountPaid, open },
        });
        d.note = `part paid after hand-over: reported to the partner (${added} ${invoice.currency}; ${open} still open, the claim stays with the agency)`;
      }
    }
  } else if (BEFORE_HANDOVER.includes(invoice.status) && newer) {
    const status = invoice.failureCount > 0 ? 'recovered' : 'settled';
    Object.assign(d.invoicePatch, { status, resolution: 'paid_in_full', resolvedBy: ev.provider });
    d.history.push(statusEntry(status, 'paid_in_full'));
    d.note = 'recovered by the PSP before hand-over';
  } else {
    d.note = `payment recorded (invoice is ${invoice.status})`;
  }

  const owed = owedBackChange(
    { ...invoice, amountPaid },
    { source: ev.provider, occurredAt: at, detail: { event: ev.providerEventType, eventId: ev.providerEventId } },
  );
  if (owed) {
    d.invoicePatch.amountOwedBack = owed.amount;
    d.history.push(owed.history);
    d.note += `; ${owed.summary.replace(' owed back', ' is owed back')}`;
  }
  return d;
}

const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];

/**
 * A voided invoice, a chargeback or a refund: not collectible. A voided, disputed or refunded
 * invoice is never handed over, and is taken back from a live claim (`agency.withdraw`). A dispute's
 * later events, a dispute the merchant won and a partial refund are timeline entries only.
 */
function decideReversal({ invoice, liveClaim, disputedBefore }: PaymentState, ev: PaymentEvent): PaymentDecision {
  const at = ev.occurredAt;
  const d = nothing('');
  if (isNewerEvent(invoice, at)) d.invoicePatch.lastEventAt = new Date(at).toISOString();
  const [status, resolution, withdrawReason] =
    ev.kind === 'invoice_voided' ? ['voided', 'credit_note', 'credit_note'] : ev.kind === 'chargeback' ? ['disputed', null, 'chargeback'] : ['closed', 'credit_note', 'refund'];
  const timelineOnly = (entry: string, note: string, extra: Record<string, unknown> = {}): PaymentDecision => {
    d.history.push({
      merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: entry, reason: ev.failure?.reason ?? null, source: ev.provider, occurredAt: at,
      detail: { event: ev.providerEventType, eventId: ev.providerEventId, ...ev.detail, ...extra },
    });
    d.note = note;
    return d;
  };
  const statusEntry = (st: string, res: string | null): HistoryEntry => ({
    merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: st, reason: res, source: ev.provider, occurredAt: at,
    detail: { event: ev.providerEventType, eventId: ev.providerEventId, ...ev.detail },
  });
  const disputeStatus = typeof ev.detail?.disputeStatus === 'string' ? ev.detail.disputeStatus : undefined;
  const entry = ev.kind === 'chargeback' && disputeStatus ? `dispute_${disputeStatus}` : ev.kind;
  if (ev.kind === 'chargeback') {
    // A dispute's later events (updated, closed, funds withdrawn/reinstated) on an invoice the first
    // one already made disputed — its claim, if any, was withdrawn then — and a dispute the merchant
    // won (the money stayed with the merchant) change nothing but the timeline. (An invoice the
    // agency reported disputed still has a live claim: not this case.)
    if ((!liveClaim && disputedBefore) || disputeStatus === 'won') {
      return timelineOnly(entry, `chargeback${disputeStatus ? ` (${disputeStatus})` : ''}: kept on the timeline (invoice is ${invoice.status})`);
    }
  }
  if (ev.kind === 'refund') {
    // `payment.amount` of a refund is what has been refunded on the payment so far. Less than the
    // invoice's total is a partial refund: the rest is still owed, so nothing is withdrawn or closed.
    // Without an amount: a full refund.
    const refunded = ev.payment?.amount;
    const total = Math.max(invoice.amountDue, invoice.amountPaid);
    if (refunded && refunded.currency === invoice.currency && refunded.value < total) {
      return timelineOnly('refund_partial', `partial refund (${refunded.value} of ${total} ${invoice.currency}): kept on the timeline`, { amountRefunded: refunded });
    }
  }
  if (liveClaim) {
    d.claimPatch = { id: liveClaim.id, status: 'withdrawn', resolution: 'withdrawn_by_merchant' };
    d.history.push({ merchantId: invoice.merchantId, entity: 'claim', entityId: liveClaim.id, status: 'withdrawn', reason: withdrawReason, source: ev.provider, occurredAt: at });
    d.outbox.push({
      kind: 'agency.withdraw', lane: partnerLane(liveClaim.partnerId), payload: { caseId: liveClaim.caseId, claimId: liveClaim.id, reason: withdrawReason },
      idempotencyKey: `withdraw-${liveClaim.id}`, merchantId: invoice.merchantId, invoiceId: invoice.id, caseId: liveClaim.caseId,
    });
    d.refreshCaseId = liveClaim.caseId;
    const st = ev.kind === 'invoice_voided' ? 'withdrawn' : status;
    const res = resolution ?? 'withdrawn_by_merchant';
    Object.assign(d.invoicePatch, { status: st, resolution: res, resolvedBy: ev.provider });
    d.history.push(statusEntry(st, res));
    d.note = `${ev.kind}: withdrawn from case ${liveClaim.caseId}`;
    return d;
  }
  if (ev.kind === 'chargeback') d.customerFailure = true;
  // Paid invoices (through the PSP, or to the merchant after hand-over) are what refunds and
  // disputes take money back from; a full refund of a paid invoice closes it (credit note).
  const paidStatuses = ev.kind === 'refund' ? ['recovered', 'settled', 'paid'] : ['recovered', 'settled'];
  if (TERMINAL.includes(invoice.status) && !paidStatuses.includes(invoice.status)) {
    return timelineOnly(entry, `${ev.kind} recorded (invoice already ${invoice.status})`);
  }
  Object.assign(d.invoicePatch, { status, resolution, resolvedBy: ev.provider });
  d.history.push(statusEntry(status, resolution));
  d.note = `${ev.kind}: invoice ${status}, not handed over`;
  return d;
}
