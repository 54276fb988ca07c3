/**
 * The merchant's own actions on an invoice that is with a collection partner:
 *
 *   POST /v1/invoices/:ref/withdraw   { reason }  take it back (the claim is withdrawn)
 *   POST /v1/invoices/:ref/hold       { reason }  pause collecting it
 *   POST /v1/invoices/:ref/hold       { reason, holdUntil }  not handed over before then (an invoice still waiting for hand-over)
 *   POST /v1/invoices/:ref/resume     { reason }  carry on after a hold (or release a holdUntil early)
 *   POST /v1/invoices/:ref/reminder   { sentAt }  the merchant's dunning sent the pre-hand-over letter then
 *
 * Each changes the claim and invoice at once (with the reason on their timelines), and owes the
 * agency the matching call through the outbox (`agency.withdraw`, `agency.hold`,
 * `agency.resume`), in the same transaction; the call and the merchant's request both show in
 * the sync log. Tenant-scoped like the rest of the merchant API: another merchant's invoice is
 * 404; an invoice not with a partner (or not on hold, for resume) is 409. Answers 202: the agency
 * is told shortly, not yet.
 *
 * `hold` with `holdUntil` is for an invoice not handed over yet ("the customer promised to pay by
 * the 30th", issue 12 hole 9; src/policy/merchant-hold.ts): it sets `invoices.hold_until`, and owes
 * a hand-over check at that moment through the outbox; until then the check leaves the invoice out.
 * Nothing goes to the agency. `resume` on such an invoice releases it early (a check due now).
 * 400: holdUntil not a date, not in the future or too far ahead; 409: the invoice is with a partner
 * (hold it there without holdUntil) or no longer waits for a hand-over. Answers 202.
 *
 * `reminder` is different: nothing goes to the agency. It sets `invoices.reminder_sent_at` (the date
 * the country rules' notice term runs from, src/pipeline/handover-check.ts) for an invoice that is
 * not handed over yet, and owes the customer a hand-over check at the new notice gate (or now, when
 * the gate has passed) through the outbox, so a held invoice goes as soon as the term allows.
 * 400: no date, not ISO 8601, or in the future; 409: the invoice is already with a partner (or
 * otherwise no longer waits for a hand-over: paid, voided, disputed…). Answers 200.
 */
import express, { type Request, type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import type { HubContext, OutboxWriter } from '../context';
import type { Sql } from '../store/db';
import type { CaseRow, ClaimRow, InvoiceRow } from '../ledger/rows';
import { addHistory } from '../ledger/history';
import { withdrawClaim } from '../ledger/payment-ledger';
import { refreshCaseStatus } from '../ledger/case-status';
import { partnerLane } from '../outbox/outbox';
import { recordExchanges } from '../exchanges/exchange-log';
import { outboxKind } from '../notify/kinds';
import { merchantAuthOptions, requireMerchant } from './merchant-auth';
import { HttpError, notFound } from './errors';
import { invoiceView } from './merchant-api';
import { loadCountryRules, noticeEndsAt, ruleFor, type CountryRule } from '../policy/country-rules';
import { heldByMerchant, parseHoldUntil } from '../policy/merchant-hold';
import { letterDateProblem } from '../policy/letter-evidence';

export const MERCHANT_ACTIONS = ['withdraw', 'hold', 'resume'] as const;
export type MerchantAction = (typeof MERCHANT_ACTIONS)[number];

const MAX_REF_LENGTH = 256;
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

const actionBody = z.strictObject({
  holdUntil: z.unknown().optional(),
  reason: z
    .string({ error: 'reason is required (a short text the agency and your timeline will show)' })
    .trim()
    .min(1, 'reason must not be empty')
    .max(500, 'reason must be at most 500 characters')
    .refine((s) => !CONTROL.test(s), 'reason contains control characters'),
});

/** Claim statuses in which the invoice is still with the partner. */
const LIVE = `status NOT IN ('withdrawn','closed','paid','uncollectible')`;

function refParam(req: Request): string {
  const v = String(req.params.ref);
  if (v.length > MAX_REF_LENGTH || /[\u0000-\u001f\u007f]/.test(v)) throw new HttpError(400, 'bad_request', 'ref is not a valid invoice reference');
  return v;
}

function parseReason(body: unknown, action: MerchantAction, now: Date): { reason: string; holdUntil: Date | null } {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'bad_request', 'send a JSON object { "reason": "…" } with Content-Type: application/json');
  }
  const parsed = actionBody.safeParse(body);
  if (!parsed.success) {
    throw new HttpError(400, 'bad_request', parsed.error.issues[0].message);
  }
  if (parsed.data.holdUntil === undefined) return { reason: parsed.data.reason, holdUntil: null };
  if (action !== 'hold') throw new HttpError(400, 'bad_request', `holdUntil belongs to hold, not ${action}`);
  const until = parseHoldUntil(parsed.data.holdUntil, now);
  if ('problem' in until) throw new HttpError(400, 'bad_request', until.problem);
  return { reason: parsed.data.reason, holdUntil: until.at };
}

/** The status a claim or invoice had before its last hold (kept on the hold's history row). */
async function statusBeforeHold(sql: Sql, entity: 'claim' | 'invoice', id: string): Promise<string | null> {
  const r = await sql.query<{ detail: { previousStatus?: string } | null }>(
    `SELECT detail FROM status_history WHERE entity = $1 AND entity_id = $2 AND status = 'on_hold' ORDER BY id DESC LIMIT 1`,
    [entity, id],
  );
  const prev = r.rows[0]?.detail?.previousStatus;
  return typeof prev === 'string' && prev !== 'on_hold' ? prev : null;
}

interface Outcome {
  invoice: InvoiceRow;
  claim: ClaimRow | null;
  kase: CaseRow | null;
  status: string;
}

async function act(ctx: HubContext, merchantId: string, ref: string, action: MerchantAction, reason: string, holdUntil: Date | null = null): Promise<Outcome> {
  return ctx.commit(async (sql, outbox) => {
    const found = (await sql.query<{ id: string; customer_id: string }>(
      `SELECT id, customer_id FROM invoices WHERE merchant_id = $1 AND (id = $2 OR provider_ref = $2) ORDER BY created_at LIMIT 1`,
      [merchantId, ref],
    )).rows[0];
    if (!found) throw notFound(`invoice ${ref}`);
    // The ledger's lock order: customer, debtor, then invoice, claim, case (so this never deadlocks with
    // it, nor with an agency update on a case that holds the same person's invoices from another PSP).
    await sql.query(`SELECT id FROM customers WHERE id = $1 FOR UPDATE`, [found.customer_id]);
    await sql.query(`SELECT d.id FROM debtors d JOIN customers c ON c.debtor_id = d.id WHERE c.id = $1 FOR UPDATE OF d`, [found.customer_id]);
    const inv = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 FOR UPDATE`, [found.id])).rows[0];
    const claim = (await sql.query<ClaimRow>(`SELECT * FROM claims WHERE invoice_id = $1 AND ${LIVE} ORDER BY created_at DESC LIMIT 1 FOR UPDATE`, [inv.id])).rows[0];
    if (claim && holdUntil) {
      throw new HttpError(409, 'in_collection', `invoice ${ref} is with the collection partner (${inv.status}): holdUntil is for an invoice waiting for hand-over; hold it without holdUntil and resume it when you want`);
    }
    if (!claim && (holdUntil || (action === 'resume' && inv.hold_until))) {
      return holdBeforeHandover(ctx, sql, outbox, merchantId, ref, inv, holdUntil, reason);
    }
    if (!claim && action === 'hold' && AWAITING_HANDOVER.includes(inv.status)) {
      throw new HttpError(409, 'not_in_collection', `invoice ${ref} is ${inv.status}, not with a collection partner yet: send holdUntil to keep it from being handed over before that date`);
    }
    if (!claim) throw new HttpError(409, 'not_in_collection', `invoice ${ref} is ${inv.status}: only an invoice with a collection partner can be ${action === 'withdraw' ? 'withdrawn' : action === 'hold' ? 'put on hold' : 'resumed'}`);
    const kase = (await sql.query<CaseRow>(`SELECT * FROM cases WHERE id = $1 AND merchant_id = $2 FOR UPDATE`, [claim.case_id, merchantId])).rows[0];
    if (!kase) throw notFound(`case of invoice ${ref}`);
    const now = ctx.clock.now();
    const common = { merchantId, customerId: inv.customer_id, invoiceId: inv.id, caseId: kase.id };
    let status: string;

    if (action === 'withdraw') {
      await withdrawClaim(sql, outbox, claim, kase.partner_id, reason, 'merchant', now, now);
      status = 'withdrawn';
      await sql.query(`UPDATE invoices SET status = 'withdrawn', resolution = 'withdrawn_by_merchant', resolved_by = 'merchant', updated_at = $2 WHERE id = $1`, [inv.id, now]);
      await addHistory(sql, { merchantId, entity: 'invoice', entityId: inv.id, status, reason, source: 'merchant', occurredAt: now, detail: { claimId: claim.id, caseId: kase.id } }, now);
    } else {
      if (action === 'hold' && claim.status === 'on_hold') throw new HttpError(409, 'already_on_hold', `invoice ${ref} is already on hold`);
      if (action === 'resume' && claim.status !== 'on_hold') throw new HttpError(409, 'not_on_hold', `invoice ${ref} is not on hold (its claim is ${claim.status})`);
      const claimTo = action === 'hold' ? 'on_hold' : ((await statusBeforeHold(sql, 'claim', claim.id)) ?? 'in_collection');
      const invoiceTo = action === 'hold' ? 'on_hold' : ((await statusBeforeHold(sql, 'invoice', inv.id)) ?? claimTo);
      status = invoiceTo;
      // A claim can be held and resumed more than once; each request is its own agency call. Every
      // hold (the merchant's or the agency's) adds an on_hold row, so the count keys each one apart.
      const n = Number((await sql.query<{ n: string }>(
        `SELECT count(*) AS n FROM status_history WHERE entity = 'claim' AND entity_id = $1 AND status = 'on_hold'`,
        [claim.id],
      )).rows[0].n);
      const detail = (previousStatus: string) => (action === 'hold' ? { previousStatus } : { resumedFrom: previousStatus });
      await sql.query(`UPDATE claims SET status = $2, updated_at = $3 WHERE id = $1`, [claim.id, claimTo, now]);
      await addHistory(sql, { merchantId, entity: 'claim', entityId: claim.id, status: claimTo, reason, source: 'merchant', occurredAt: now, detail: detail(claim.status) }, now);
      await sql.query(`UPDATE invoices SET status = $2, updated_at = $3 WHERE id = $1`, [inv.id, invoiceTo, now]);
      await addHistory(sql, { merchantId, entity: 'invoice', entityId: inv.id, status: invoiceTo, reason, source: 'merchant', occurredAt: now, detail: { ...detail(inv.status), claimId: claim.id, caseId: kase.id } }, now);
      // The case follows its claims (src/ledger/case-status.ts): on hold once every live claim is, and back.
      await refreshCaseStatus(sql, kase.id, now, 'merchant');
      await outbox.add({
        kind: outboxKind(action === 'hold' ? 'agency.hold' : 'agency.resume'),
        lane: partnerLane(kase.partner_id),
        payload: { caseId: kase.id, claimId: claim.id, reason },
        idempotencyKey: action === 'hold' ? `hold-${claim.id}-${n + 1}` : `resume-${claim.id}-${n}`,
        ...common,
      });
    }
    await recordExchanges(sql, [{
      merchantId, direction: 'in', party: 'merchant', operation: `POST /v1/invoices/:ref/${action}`, outcome: 'ok', httpStatus: 202,
      customerId: inv.customer_id, invoiceId: inv.id, caseId: kase.id, summary: `${action} requested: ${reason}`, request: { reason }, at: now,
    }]);
    const after = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1`, [inv.id])).rows[0];
    const claimAfter = (await sql.query<ClaimRow>(`SELECT * FROM claims WHERE id = $1`, [claim.id])).rows[0];
    const caseAfter = (await sql.query<CaseRow>(`SELECT * FROM cases WHERE id = $1`, [kase.id])).rows[0];
    return { invoice: after, claim: claimAfter, kase: caseAfter, status };
  });
}

// ---- hold until a date, before the hand-over ---------------------------------------------------

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);

/**
 * `hold` with holdUntil (or `resume` of such a hold) on an invoice not handed over yet, inside
 * act()'s transaction with the customer and invoice rows locked. A hold sets hold_until and owes a
 * hand-over check then; a release clears it and owes one now. A check already due for an earlier
 * moment finds the invoice held and leaves it out (src/pipeline/handover-check.ts).
 */
async function holdBeforeHandover(
  ctx: HubContext, sql: Sql, outbox: OutboxWriter, merchantId: string, ref: string, inv: InvoiceRow, holdUntil: Date | null, reason: string,
): Promise<Outcome> {
  const now = ctx.clock.now();
  if (!AWAITING_HANDOVER.includes(inv.status)) {
    throw new HttpError(409, 'not_awaiting_handover', `invoice ${ref} is ${inv.status}: it does not wait for a hand-over, so there is nothing to hold`);
  }
  const release = !holdUntil;
  if (release && !heldByMerchant(inv, now)) {
    throw new HttpError(409, 'not_on_hold', `invoice ${ref} is not held (its hold ${inv.hold_until ? `ended at ${iso(inv.hold_until)}` : 'was never set'})`);
  }
  const checkAt = holdUntil ?? now;
  await sql.query(`UPDATE invoices SET hold_until = $2, updated_at = $3 WHERE id = $1`, [inv.id, holdUntil, now]);
  await outbox.add({
    kind: 'handover_check', lane: 'hub', payload: { customerId: inv.customer_id },
    idempotencyKey: `hold-${inv.id}-${release ? `release-${now.getTime()}` : checkAt.getTime()}`,
    merchantId, customerId: inv.customer_id, invoiceId: inv.id, dueAt: checkAt,
  });
  const detail = release ? { releasedFrom: iso(inv.hold_until), handoverCheckAt: iso(checkAt) } : { holdUntil: iso(holdUntil), previous: iso(inv.hold_until), handoverCheckAt: iso(checkAt) };
  // A timeline entry, not a status: the invoice still waits for hand-over (no merchant webhook; the merchant asked).
  await addHistory(sql, { merchantId, entity: 'invoice', entityId: inv.id, status: release ? 'handover_hold_released' : 'handover_held', reason, source: 'merchant', occurredAt: now, detail }, now);
  await recordExchanges(sql, [{
    merchantId, direction: 'in', party: 'merchant', operation: `POST /v1/invoices/:ref/${release ? 'resume' : 'hold'}`, outcome: 'ok', httpStatus: 202,
    customerId: inv.customer_id, invoiceId: inv.id,
    summary: release ? `hand-over hold released: ${reason}; hand-over check now` : `hand-over held until ${iso(holdUntil)}: ${reason}`,
    request: { reason, ...(holdUntil ? { holdUntil: iso(holdUntil) } : {}) }, response: detail, at: now,
  }]);
  const after = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1`, [inv.id])).rows[0];
  return { invoice: after, claim: null, kase: null, status: after.status };
}

// ---- POST /v1/invoices/:ref/reminder ---------------------------------------------------------

/** `2026-01-02` (taken as 00:00 UTC that day) or a date-time with its offset (`2026-01-02T09:30:00Z`, `…+01:00`). */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

const reminderBody = z.strictObject({
  sentAt: z.string({ error: 'sentAt is required: the ISO 8601 date (2026-01-02) or date-time (2026-01-02T09:30:00Z) your reminder letter was sent' }),
});

/** Invoice statuses that still wait for a hand-over decision: a reminder date can matter only there. */
const AWAITING_HANDOVER = ['open', 'pending_handover'];

let rulesCache: CountryRule[] | null = null;
const countryRules = () => (rulesCache ??= loadCountryRules());

function parseSentAt(body: unknown, now: Date): Date {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'bad_request', 'send a JSON object { "sentAt": "<ISO 8601 date or date-time>" } with Content-Type: application/json');
  }
  const parsed = reminderBody.safeParse(body);
  if (!parsed.success) throw new HttpError(400, 'bad_request', parsed.error.issues[0].message);
  const raw = parsed.data.sentAt.trim();
  const dateOnly = ISO_DATE.test(raw);
  if (!dateOnly && !ISO_DATE_TIME.test(raw)) {
    throw new HttpError(400, 'bad_request', `sentAt "${raw.slice(0, 64)}" is not an ISO 8601 date (2026-01-02) or date-time with an offset (2026-01-02T09:30:00Z)`);
  }
  const at = new Date(dateOnly ? `${raw}T00:00:00Z` : raw);
  // Date rolls 2026-02-30 over to March: compare the date part back.
  if (Number.isNaN(at.getTime()) || (dateOnly && at.toISOString().slice(0, 10) !== raw)) {
    throw new HttpError(400, 'bad_request', `sentAt "${raw.slice(0, 64)}" is not a valid date`);
  }
  if (at.getTime() > now.getTime()) {
    throw new HttpError(400, 'bad_request', `sentAt ${at.toISOString()} is in the future: report a reminder once it has been sent`);
  }
  return at;
}

interface ReminderOutcome {
  invoice: InvoiceRow;
  /** The country rule's notice gate from this reminder (null: no notice rule for the debtor). */
  noticeEndsAt: Date | null;
  /** When the hand-over check runs again (null: the failure is not final yet; the ledger schedules it then). */
  checkAt: Date | null;
}

async function reportReminder(ctx: HubContext, merchantId: string, ref: string, sentAt: Date): Promise<ReminderOutcome> {
  const merchant = ctx.merchants.get(merchantId)!;
  return ctx.commit(async (sql, outbox) => {
    const found = (await sql.query<{ id: string; customer_id: string }>(
      `SELECT id, customer_id FROM invoices WHERE merchant_id = $1 AND (id = $2 OR provider_ref = $2) ORDER BY created_at LIMIT 1`,
      [merchantId, ref],
    )).rows[0];
    if (!found) throw notFound(`invoice ${ref}`);
    // The ledger's lock order (customer, then invoice): the hand-over check holds the customer row too.
    const cust = (await sql.query<{ id: string; country: string | null; type: 'consumer' | 'business' }>(
      `SELECT id, country, type FROM customers WHERE id = $1 FOR UPDATE`,
      [found.customer_id],
    )).rows[0];
    const inv = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 FOR UPDATE`, [found.id])).rows[0];
    const claim = (await sql.query<{ id: string }>(`SELECT id FROM claims WHERE invoice_id = $1 LIMIT 1`, [inv.id])).rows[0];
    if (claim || !AWAITING_HANDOVER.includes(inv.status)) {
      throw new HttpError(
        409,
        claim ? 'already_handed_over' : 'not_awaiting_handover',
        claim
          ? `invoice ${ref} has already been handed over (it is ${inv.status}): a reminder date no longer changes anything`
          : `invoice ${ref} is ${inv.status}: it does not wait for a hand-over, so a reminder date changes nothing`,
      );
    }
    // A letter before the debt fell due starts no term (src/policy/letter-evidence.ts); a subscription's
    // failed charge is its due date when the PSP gives none.
    const tooEarly = letterDateProblem(sentAt, inv.due_at ? new Date(inv.due_at) : inv.first_failed_at ? new Date(inv.first_failed_at) : null);
    if (tooEarly) throw new HttpError(422, 'letter_before_due_date', `invoice ${ref}: ${tooEarly}`);
    const now = ctx.clock.now();
    const previous = inv.reminder_sent_at ? new Date(inv.reminder_sent_at).toISOString() : null;
    await sql.query(`UPDATE invoices SET reminder_sent_at = $2, updated_at = $3 WHERE id = $1`, [inv.id, sentAt, now]);

    const rule = merchant.policy.countryRules ? ruleFor(countryRules(), cust?.country ?? merchant.country, cust?.type ?? merchant.policy.defaultDebtorType) : null;
    const gate = noticeEndsAt(rule, sentAt);
    let checkAt: Date | null = null;
    if (inv.status === 'pending_handover') {
      // The check the hand-over stage would schedule itself (handover-check.ts): at the later of the
      // merchant's hand-over date and the notice gate, or now when both have passed. A check already
      // due later (for the old reminder date) finds nothing to do, or the next invoice, when it runs.
      const due = Math.max(now.getTime(), inv.handover_due_at ? new Date(inv.handover_due_at).getTime() : 0, gate?.getTime() ?? 0);
      checkAt = new Date(due);
      await outbox.add({
        kind: 'handover_check',
        lane: 'hub',
        payload: { customerId: inv.customer_id },
        idempotencyKey: `reminder-${inv.id}-${sentAt.getTime()}-${due}`,
        merchantId,
        customerId: inv.customer_id,
        invoiceId: inv.id,
        dueAt: checkAt,
      });
    }
    const detail = {
      sentAt: sentAt.toISOString(),
      ...(previous ? { previous } : {}),
      ...(gate ? { noticeEndsAt: gate.toISOString(), rule: `${rule!.country} ${rule!.debtorType}` } : {}),
      ...(checkAt ? { handoverCheckAt: checkAt.toISOString() } : {}),
    };
    await addHistory(sql, { merchantId, entity: 'invoice', entityId: inv.id, status: 'reminder_sent', reason: null, source: 'merchant', occurredAt: sentAt, detail }, now);
    await recordExchanges(sql, [{
      merchantId, direction: 'in', party: 'merchant', operation: 'POST /v1/invoices/:ref/reminder', outcome: 'ok', httpStatus: 200,
      customerId: inv.customer_id, invoiceId: inv.id,
      summary: `reminder sent ${sentAt.toISOString()}${gate ? `; notice term ends ${gate.toISOString()}` : ''}${checkAt ? `; hand-over check at ${checkAt.toISOString()}` : ''}`,
      request: { sentAt: sentAt.toISOString() }, response: detail, at: now,
    }]);
    const after = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1`, [inv.id])).rows[0];
    return { invoice: after, noticeEndsAt: gate, checkAt };
  });
}

export interface MerchantActionsOptions {
  /** Per-merchant rate limit (the same buckets as the merchant API), run once the token named the merchant. */
  perMerchantLimit?: RequestHandler;
}

export function merchantActionsRouter(ctx: HubContext, opts: MerchantActionsOptions = {}): Router {
  const router = express.Router();
  const auth = requireMerchant(merchantAuthOptions(ctx));
  const noLimit: RequestHandler = (_req, _res, next) => next();
  const json = express.json({ limit: '16kb' });

  for (const action of MERCHANT_ACTIONS) {
    router.post(`/v1/invoices/:ref/${action}`, auth, opts.perMerchantLimit ?? noLimit, json, async (req, res) => {
      const merchantId = req.merchantId!;
      const ref = refParam(req);
      const { reason, holdUntil } = parseReason(req.body, action, ctx.clock.now());
      const done = await act(ctx, merchantId, ref, action, reason, holdUntil);
      ctx.logger.info(`invoice ${action} requested by merchant`, { merchantId, invoiceId: done.invoice.id, caseId: done.kase?.id ?? null });
      res.status(202).json({
        action, reason, status: done.status, ...(done.claim ? {} : { holdUntil: iso(done.invoice.hold_until) }),
        invoice: invoiceView(done.invoice, done.claim, done.kase),
      });
    });
  }

  router.post('/v1/invoices/:ref/reminder', auth, opts.perMerchantLimit ?? noLimit, json, async (req, res) => {
    const merchantId = req.merchantId!;
    const ref = refParam(req);
    const sentAt = parseSentAt(req.body, ctx.clock.now());
    const done = await reportReminder(ctx, merchantId, ref, sentAt);
    ctx.logger.info('invoice reminder date reported by merchant', { merchantId, invoiceId: done.invoice.id, sentAt: sentAt.toISOString() });
    res.status(200).json({
      sentAt: sentAt.toISOString(),
      noticeEndsAt: done.noticeEndsAt?.toISOString() ?? null,
      handoverCheckAt: done.checkAt?.toISOString() ?? null,
      invoice: invoiceView(done.invoice),
    });
  });
  return router;
}
