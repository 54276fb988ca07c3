/**
 * The ledger stage for PSP events: applies one canonical PaymentEvent to the customer and
 * invoice state, ordered by the PSP's occurredAt (an older event never overwrites a newer
 * status), and writes the outbox rows the change owes: a hand-over check when a failure
 * becomes final, a payment report or a withdrawal when the invoice is already with a partner.
 *
 * Echoes: after the agency collects (or writes off) an invoice, the hub writes the outcome back to
 * the PSP (src/notify/stripe-writeback-stage.ts), and the PSP then reports it as an event of its
 * own (Stripe: `invoice.paid` with `paid_out_of_band`, `invoice.marked_uncollectible`). Those are
 * not new facts: they change nothing, owe the agency nothing and are not counted again; they go
 * on the invoice's timeline as `psp_writeback_echo` (see writeBackEcho).
 */
import type { PaymentEvent } from '../domain/types';
import type { Sql } from '../store/db';
import type { OutboxWriter, MerchantSettings } from '../context';
import { newId } from '../domain/ids';
import { addHistory, addHistoryRows, flushHistory } from './history';
import { holdBack } from '../store/deferred';
import { forgetInvoiceRefs, namesNoInvoice, paymentRefsOf } from './prefetch';
import type { CustomerRow, InvoiceRow, ClaimRow } from './rows';
import { partnerLane } from '../outbox/outbox';
import { refreshCaseStatus } from './case-status';
import { findLinkedInvoice, withLinkNote, type LinkOutcome } from './invoice-link';
import { writeBackIdempotencyKey } from '../notify/stripe-writeback-stage';
import { DEBTOR_UPSERT, linkDebtor } from './debtors';
import type { IdentifierHasher } from '../screening/identifiers';
import { learnIdentifiers } from '../screening/store';
import { decidePaymentEvent, invoiceStateOf, type InvoicePatch, type LiveClaim, type PaymentDecision } from './payment-decision';

export interface LedgerResult {
  customerId: string | null;
  invoiceId: string | null;
  /** The event's customer as upserted — locked with its debtor in this transaction (linkDebtor). */
  customer?: CustomerRow | null;
  /** One line for the log and the event's row. */
  note: string;
}

/**
 * The event's customer, created or updated, linked to its debtor; and, in the same transaction,
 * the salted hashes of the identifiers the event teaches about it (e-mail, the merchant's customer
 * id, IBAN, card fingerprint) for screening (src/screening/store.ts), never the plain values.
 */
export async function upsertCustomer(sql: Sql, merchant: MerchantSettings, ev: PaymentEvent, now: Date, identifiers: IdentifierHasher): Promise<CustomerRow | null> {
  const c = ev.customer;
  if (!c?.ref) return null;
  // The merchant-level debtor first (src/ledger/debtors.ts): it locks the customer, then the debtor.
  const link = await linkDebtor(sql, ev.merchantId, ev.provider, c, merchant.policy, now);
  const debtorId = link.debtorId;
  // A new customer's own debtor is written here, before the customer, in the same statement.
  const debtor = link.createWithCustomer;
  const r = await sql.query<CustomerRow>(
    `${debtor ? `WITH debtor AS (${DEBTOR_UPSERT.replace('$1,$2,$3', '$13,$2,$12')} RETURNING id) ` : ''}INSERT INTO customers (id, merchant_id, provider, provider_ref, name, email, phone, address, country, locale, type, created_at, updated_at, debtor_id, merchant_ref)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$12,$13,$14)
     ON CONFLICT (merchant_id, provider, provider_ref) DO UPDATE SET
       name = COALESCE(EXCLUDED.name, customers.name), email = COALESCE(EXCLUDED.email, customers.email),
       phone = COALESCE(EXCLUDED.phone, customers.phone), address = COALESCE(EXCLUDED.address, customers.address),
       country = COALESCE(EXCLUDED.country, customers.country), locale = COALESCE(EXCLUDED.locale, customers.locale),
       debtor_id = EXCLUDED.debtor_id, merchant_ref = COALESCE(EXCLUDED.merchant_ref, customers.merchant_ref),
       updated_at = EXCLUDED.updated_at
     RETURNING *`,
    [
      newId('cust'), ev.merchantId, ev.provider, c.ref, c.name ?? null, c.email ?? null, c.phone ?? null,
      c.address ? JSON.stringify(c.address) : null, c.country ?? c.address?.country ?? null, c.locale ?? null,
      c.type ?? merchant.policy.defaultDebtorType, now, debtorId, c.merchantRef ?? null,
    ],
  );
  const row = r.rows[0];
  await learnIdentifiers(sql, identifiers, row, ev, link, now);
  return row;
}

/**
 * Find the invoice by its PSP id, or by any PSP payment id recorded for it (disputes carry only a
 * charge), or — a new payment for an open invoice (a Mollie re-payment) — by its link keys.
 */
export async function findInvoice(sql: Sql, ev: PaymentEvent, link?: LinkOutcome): Promise<InvoiceRow | null> {
  // In a batch: refs that named no invoice when it began, and that nothing since has recorded (src/ledger/prefetch.ts).
  if (namesNoInvoice(sql, ev)) return findLinkedInvoice(sql, ev, link);
  const payRefs = paymentRefsOf(ev);
  if (ev.invoice?.ref && payRefs.length) {
    // Both lookups in one statement (a new failure, the pipeline's common case, finds neither).
    const lookups = payRefs.map((_, i) => `(SELECT invoice_id FROM invoice_payment_refs WHERE merchant_id = $1 AND provider = $2 AND payment_ref = $${i + 4})`);
    const r = await sql.query<InvoiceRow>(
      `SELECT * FROM invoices WHERE id = COALESCE(
         (SELECT id FROM invoices WHERE merchant_id = $1 AND provider = $2 AND provider_ref = $3),
         (SELECT invoice_id FROM (${lookups.join(' UNION ALL ')}) AS hit(invoice_id) WHERE invoice_id IS NOT NULL LIMIT 1)) FOR UPDATE`,
      [ev.merchantId, ev.provider, ev.invoice.ref, ...payRefs],
    );
    return r.rows[0] ?? findLinkedInvoice(sql, ev, link);
  }
  if (ev.invoice?.ref) {
    const r = await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE merchant_id = $1 AND provider = $2 AND provider_ref = $3 FOR UPDATE`, [
      ev.merchantId, ev.provider, ev.invoice.ref,
    ]);
    if (r.rows[0]) return r.rows[0];
  }
  const unique = paymentRefsOf(ev);
  if (unique.length) {
    // One primary-key lookup per ref (equality on every key column), then the invoice by its key.
    // Written as `payment_ref = ANY($3)`, PostgreSQL 15 on a table without fresh statistics (a new
    // deployment, the benchmark) used only (merchant_id, provider) of the index and filtered every
    // ref of the merchant: 1 ms and ~2,000 buffers per event at 2,000 invoices, growing with the
    // table — the costliest statement of the pipeline (pg_stat_statements, BENCHMARKS.md).
    const lookups = unique.map((_, i) => `(SELECT invoice_id FROM invoice_payment_refs WHERE merchant_id = $1 AND provider = $2 AND payment_ref = $${i + 3})`);
    const r = await sql.query<InvoiceRow>(
      `SELECT * FROM invoices WHERE id = (SELECT invoice_id FROM (${lookups.join(' UNION ALL ')}) AS hit(invoice_id) WHERE invoice_id IS NOT NULL LIMIT 1) FOR UPDATE`,
      [ev.merchantId, ev.provider, ...unique],
    );
    if (r.rows[0]) return r.rows[0];
  }
  return findLinkedInvoice(sql, ev, link);
}

async function rememberPaymentRefs(sql: Sql, ev: PaymentEvent, invoiceId: string): Promise<void> {
  const refs = paymentRefsOf(ev);
  if (!refs.length) return;
  forgetInvoiceRefs(sql, ev);
  // One statement for all of them (a charge and its payment intent: two refs on most events).
  await sql.query(
    `INSERT INTO invoice_payment_refs (merchant_id, provider, payment_ref, invoice_id)
     SELECT $1, $2, r, $4 FROM unnest($3::text[]) AS r ON CONFLICT DO NOTHING`,
    [ev.merchantId, ev.provider, refs, invoiceId],
  );
}

/**
 * A new invoice, with — in the same statement — the event's payment refs and its link keys
 * (invoice-link.ts), so a later event finds it. `inserted` is false when another transaction
 * inserted it first: then it is read (locked) and the caller records the refs itself.
 */
async function insertInvoice(
  sql: Sql, ev: PaymentEvent, customerId: string, status: string, now: Date,
  /** The id to give it, and a decision's patch to insert it with (a new invoice's first event, decided on its draft). */
  decided?: { id: string; patch: InvoicePatch },
): Promise<{ invoice: InvoiceRow; inserted: boolean }> {
  const inv = ev.invoice!;
  const refs = paymentRefsOf(ev);
  const keys = inv.linkKeys ?? [];
  const values: Record<string, unknown> = {
    id: decided?.id ?? newId('inv'), merchant_id: ev.merchantId, customer_id: customerId, provider: ev.provider, provider_ref: inv.ref,
    number: inv.number ?? null, currency: inv.amountDue.currency, amount_due: inv.amountDue.value, issued_at: inv.issuedAt ?? null,
    due_at: inv.dueAt ?? null, subscription_ref: inv.subscriptionRef ?? null, description: inv.description ?? null, status,
    payment_method: ev.payment?.method ?? null, last_event_at: null, created_at: now, updated_at: now,
  };
  for (const [k, column] of Object.entries(PATCH_COLUMNS)) if (decided && k in decided.patch) values[column] = decided.patch[k as keyof InvoicePatch];
  const columns = Object.keys(values);
  const n = columns.length;
  const r = await sql.query<InvoiceRow>(
    `WITH ins AS (
       INSERT INTO invoices (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(',')})
       ON CONFLICT (merchant_id, provider, provider_ref) DO NOTHING RETURNING *
     ), refs AS (
       INSERT INTO invoice_payment_refs (merchant_id, provider, payment_ref, invoice_id)
       SELECT $${n + 1}, $${n + 2}, ref, ins.id FROM ins, unnest($${n + 3}::text[]) AS ref ON CONFLICT DO NOTHING
     ), keys AS (
       INSERT INTO invoice_link_keys (merchant_id, provider, rule, link_key, invoice_id)
       SELECT $${n + 1}, $${n + 2}, k.rule, k.link_key, ins.id FROM ins, unnest($${n + 4}::text[], $${n + 5}::text[]) AS k(rule, link_key) ON CONFLICT DO NOTHING
     )
     SELECT * FROM ins`,
    [...Object.values(values), ev.merchantId, ev.provider, refs, keys.map((k) => k.rule), keys.map((k) => k.key)],
  );
  forgetInvoiceRefs(sql, ev);
  if (r.rows[0]) return { invoice: r.rows[0], inserted: true };
  // Inserted concurrently: read it (locked) instead.
  const again = await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE merchant_id = $1 AND provider = $2 AND provider_ref = $3 FOR UPDATE`, [
    ev.merchantId, ev.provider, inv.ref,
  ]);
  return { invoice: again.rows[0], inserted: false };
}

/** Take an invoice back from its partner: one claim withdrawn, the call owed through the outbox. */
export async function withdrawClaim(
  sql: Sql,
  outbox: OutboxWriter,
  claim: ClaimRow,
  partnerId: string,
  reason: string,
  source: string,
  now: Date,
  occurredAt: Date | string,
): Promise<void> {
  await sql.query(`UPDATE claims SET status = 'withdrawn', resolution = 'withdrawn_by_merchant', updated_at = $2 WHERE id = $1`, [claim.id, now]);
  await addHistory(sql, { merchantId: claim.merchant_id, entity: 'claim', entityId: claim.id, status: 'withdrawn', reason, source, occurredAt }, now);
  await outbox.add({
    kind: 'agency.withdraw',
    lane: partnerLane(partnerId),
    payload: { caseId: claim.case_id, claimId: claim.id, reason },
    idempotencyKey: `withdraw-${claim.id}`,
    merchantId: claim.merchant_id,
    invoiceId: claim.invoice_id,
    caseId: claim.case_id,
  });
  await refreshCaseStatus(sql, claim.case_id, now, source);
}

export interface WriteBackEcho {
  outboxId: number;
  action: 'pay' | 'mark_uncollectible';
  /** How the event was recognised: the idempotency key of our call, or the state it reports. */
  matchedBy: 'idempotency_key' | 'paid_out_of_band';
}

/**
 * Is this PSP event the echo of the hub's own write-back to the PSP? Only a payment or an
 * uncollectible mark of an invoice the hub owes (or owed) that very write-back (a `psp.writeback`
 * outbox row for it, not cancelled), and then:
 *  - the event names the API call that caused it with our idempotency key
 *    (`detail.requestIdempotencyKey` = the row's Stripe key: Stripe's `event.request.idempotency_key`), or
 *  - for a payment: it is out of band (`detail.paidOutOfBand`), which is exactly what the
 *    write-back does — a card or bank payment by the customer is never out of band.
 * An out-of-band payment with no write-back owed (the merchant marked it paid by hand while the
 * agency still collects) is a new fact and is reported to the agency as before.
 */
export async function writeBackEcho(sql: Sql, ev: PaymentEvent, invoiceId: string): Promise<WriteBackEcho | null> {
  const action = ev.kind === 'payment_succeeded' ? 'pay' : ev.kind === 'invoice_uncollectible' ? 'mark_uncollectible' : null;
  if (!action) return null;
  const rows = (await sql.query<{ id: number; idempotency_key: string }>(
    `SELECT id, idempotency_key FROM outbox
      WHERE kind = 'psp.writeback' AND invoice_id = $1 AND merchant_id = $2 AND payload->>'action' = $3 AND status <> 'cancelled'
      ORDER BY id`,
    [invoiceId, ev.merchantId, action],
  )).rows;
  if (!rows.length) return null;
  const key = typeof ev.detail?.requestIdempotencyKey === 'string' ? ev.detail.requestIdempotencyKey : null;
  const byKey = key ? rows.find((r) => writeBackIdempotencyKey(r.idempotency_key) === key) : undefined;
  if (byKey) return { outboxId: byKey.id, action, matchedBy: 'idempotency_key' };
  if (action === 'pay' && ev.detail?.paidOutOfBand === true) return { outboxId: rows[rows.length - 1].id, action, matchedBy: 'paid_out_of_band' };
  return null;
}

/** The state a new invoice has as insertInvoice writes it (before any decision): what its first event is decided on. */
function draftInvoiceState(id: string, ev: PaymentEvent, customerId: string): ReturnType<typeof invoiceStateOf> {
  const inv = ev.invoice!;
  return {
    id, merchantId: ev.merchantId, customerId, currency: inv.amountDue.currency, status: 'open', resolution: null, resolvedBy: null,
    amountDue: inv.amountDue.value, amountPaid: 0, amountCollected: 0, amountOwedBack: 0, failureCount: 0, lastEventAt: null,
    failureCode: null, firstFailedAt: null, lastFailedAt: null, handoverDueAt: null,
  };
}

/** The invoice's live claim with the partner that holds it: the state a payment decision needs. */
async function liveClaimWithPartner(sql: Sql, invoiceId: string): Promise<LiveClaim | null> {
  const r = await sql.query<{ id: string; case_id: string; status: string; partner_id: string }>(
    `SELECT c.id, c.case_id, c.status, k.partner_id FROM claims c JOIN cases k ON k.id = c.case_id
      WHERE c.invoice_id = $1 AND c.status NOT IN ('withdrawn','closed','paid','uncollectible') ORDER BY c.created_at DESC LIMIT 1`,
    [invoiceId],
  );
  const c = r.rows[0];
  return c ? { id: c.id, caseId: c.case_id, status: c.status, partnerId: c.partner_id } : null;
}

const PATCH_COLUMNS: Record<keyof InvoicePatch, string> = {
  status: 'status', resolution: 'resolution', resolvedBy: 'resolved_by', amountDue: 'amount_due', amountPaid: 'amount_paid', amountCollected: 'amount_collected',
  amountOwedBack: 'amount_owed_back', lastEventAt: 'last_event_at', failureCode: 'failure_code', failureReason: 'failure_reason',
  failureMessage: 'failure_message', failureRetryable: 'failure_retryable', failureFinal: 'failure_final', failureCount: 'failure_count',
  firstFailedAt: 'first_failed_at', lastFailedAt: 'last_failed_at', handoverDueAt: 'handover_due_at', paymentMethod: 'payment_method',
};

/** The SQL edge of a pure decision: write exactly what it returns, in its order. */
export async function writeDecision(sql: Sql, outbox: OutboxWriter, invoiceId: string, d: PaymentDecision, now: Date, source: string): Promise<void> {
  const params: unknown[] = [invoiceId];
  const sets: string[] = [];
  for (const [key, column] of Object.entries(PATCH_COLUMNS)) {
    if (!(key in d.invoicePatch)) continue;
    params.push(d.invoicePatch[key as keyof InvoicePatch]);
    sets.push(`${column} = $${params.length}`);
  }
  // Only a change a reader sees moves updated_at (the ordering stamp alone does not).
  if (sets.length > ('lastEventAt' in d.invoicePatch ? 1 : 0)) {
    params.push(now);
    sets.push(`updated_at = $${params.length}`);
  }
  if (sets.length) await sql.query(`UPDATE invoices SET ${sets.join(', ')} WHERE id = $1`, params);
  if (d.claimPatch) {
    await sql.query(`UPDATE claims SET status = $2, resolution = $3, updated_at = $4 WHERE id = $1`, [d.claimPatch.id, d.claimPatch.status, d.claimPatch.resolution, now]);
  }
  await addHistoryRows(sql, d.history, now);
  for (const row of d.outbox) await outbox.add(row);
  if (d.refreshCaseId) await refreshCaseStatus(sql, d.refreshCaseId, now, source);
}

export async function applyPaymentEvent(
  sql: Sql,
  outbox: OutboxWriter,
  merchant: MerchantSettings,
  ev: PaymentEvent,
  now: Date,
  /** The hub's identifier hasher (HubContext.identifiers): what the event teaches is kept only hashed. */
  identifiers: IdentifierHasher,
): Promise<LedgerResult> {
  // Serializes all work on one customer (hand-over checks, concurrent events): nothing twice. The
  // upsert holds the customer's row lock: linkDebtor locks a known customer's row (with its
  // debtor) before anything else, and a new customer's row is this transaction's own insert.
  const customer = await upsertCustomer(sql, merchant, ev, now, identifiers);
  const link: LinkOutcome = {};
  let invoice = await findInvoice(sql, ev, link);
  const result = (note: string): LedgerResult => ({ customerId: customer?.id ?? invoice?.customer_id ?? null, invoiceId: invoice?.id ?? null, customer, note: withLinkNote(note, link) });

  switch (ev.kind) {
    case 'payment_failed':
    case 'invoice_uncollectible': {
      if (!ev.invoice && !invoice) {
        if (customer && ev.failure) await noteCustomerFailure(sql, customer.id, ev, now);
        return result('failure without an invoice: kept on the customer');
      }
      if (!customer && !invoice) return result('failure without a customer: nothing to apply');
      if (invoice && ev.kind === 'invoice_uncollectible') {
        const echo = await writeBackEcho(sql, ev, invoice.id);
        if (echo) {
          const decision = decidePaymentEvent({ invoice: invoiceStateOf(invoice), liveClaim: null, echo }, ev);
          await writeDecision(sql, outbox, invoice.id, decision, now, ev.provider);
          return result(decision.note);
        }
      }
      if (ev.kind === 'payment_failed' && !ev.failure) {
        // No failure facts (a charge-level echo of an invoice failure): keep it on the timeline only,
        // with the raw codes the connector read (the invoice's own failure event decides finality).
        if (invoice) {
          await rememberPaymentRefs(sql, ev, invoice.id);
          const failureCodes = Array.isArray(ev.detail?.failureCodes) ? ev.detail.failureCodes : undefined;
          await addHistory(sql, { merchantId: ev.merchantId, entity: 'invoice', entityId: invoice.id, status: 'payment_attempt_failed', source: ev.provider, occurredAt: ev.occurredAt, detail: { event: ev.providerEventType, eventId: ev.providerEventId, payment: ev.payment?.ref, ...(failureCodes ? { failureCodes } : {}) } }, now);
        }
        return result('payment attempt failed without failure details: kept on the timeline');
      }
      if (!invoice) {
        // A new invoice: decided on its draft (the state it would have as inserted) and inserted as
        // decided, refs and keys with it — one statement instead of an insert and an update.
        const id = newId('inv');
        const draft = draftInvoiceState(id, ev, customer!.id);
        const first = decidePaymentEvent({ invoice: draft, liveClaim: null, echo: null, policy: merchant.policy }, ev);
        const made = await insertInvoice(sql, ev, customer!.id, 'open', now, { id, patch: first.invoicePatch });
        invoice = made.invoice;
        if (made.inserted) {
          await writeDecision(sql, outbox, invoice.id, { ...first, invoicePatch: {} }, now, ev.provider);
          if (customer) await noteCustomerFailure(sql, customer.id, ev, now);
          return result(first.note);
        }
        // Inserted by another transaction meanwhile: decided on what it holds, as any known invoice.
      }
      await rememberPaymentRefs(sql, ev, invoice.id);
      // The decision is pure (src/ledger/payment-decision.ts decideFailure): load the state, decide, write.
      const decision = decidePaymentEvent({ invoice: invoiceStateOf(invoice), liveClaim: null, echo: null, policy: merchant.policy }, ev);
      await writeDecision(sql, outbox, invoice.id, decision, now, ev.provider);
      if (customer) await noteCustomerFailure(sql, customer.id, ev, now);
      return result(decision.note);
    }

    case 'payment_succeeded': {
      if (!invoice && !ev.invoice) return result('payment without an invoice: nothing to apply');
      if (!invoice) {
        if (!customer) return result('payment without a customer: nothing to apply');
        const made = await insertInvoice(sql, ev, customer.id, 'settled', now);
        invoice = made.invoice;
        const paid = ev.payment?.amount?.value ?? ev.invoice!.amountDue.value;
        await sql.query(`UPDATE invoices SET amount_paid = $2, last_event_at = $3 WHERE id = $1`, [invoice.id, paid, new Date(ev.occurredAt)]);
        if (!made.inserted) await rememberPaymentRefs(sql, ev, invoice.id);
        return result('paid without a known failure: recorded as settled');
      }
      // The decision is pure (src/ledger/payment-decision.ts): load the state, decide, write.
      const echo = await writeBackEcho(sql, ev, invoice.id);
      if (!echo) await rememberPaymentRefs(sql, ev, invoice.id);
      const decision = decidePaymentEvent({ invoice: invoiceStateOf(invoice), liveClaim: echo ? null : await liveClaimWithPartner(sql, invoice.id), echo }, ev);
      await writeDecision(sql, outbox, invoice.id, decision, now, ev.provider);
      return result(decision.note);
    }

    case 'invoice_voided':
    case 'chargeback':
    case 'refund': {
      if (!invoice) {
        if (customer) {
          await addHistory(
            sql,
            { merchantId: ev.merchantId, entity: 'customer', entityId: customer.id, status: ev.kind, reason: ev.failure?.reason ?? null, source: ev.provider, occurredAt: ev.occurredAt, detail: { event: ev.providerEventType, payment: ev.payment?.ref, ...ev.detail } },
            now,
          );
        }
        return result(`${ev.kind} for a payment the hub has no invoice for: kept on the customer timeline`);
      }
      await rememberPaymentRefs(sql, ev, invoice.id);
      // Not collectible: decided by src/ledger/payment-decision.ts (decideReversal); the edge loads
      // the live claim and, for a chargeback, whether this PSP disputed the invoice before.
      const claim = await liveClaimWithPartner(sql, invoice.id);
      const disputedBefore =
        ev.kind === 'chargeback' && !claim &&
        (invoice.status === 'disputed' ||
          (await disputedByBefore(sql, invoice.id, ev.provider)));
      const decision = decidePaymentEvent({ invoice: invoiceStateOf(invoice), liveClaim: claim, echo: null, disputedBefore }, ev);
      await writeDecision(sql, outbox, invoice.id, decision, now, ev.provider);
      if (decision.customerFailure && customer) await noteCustomerFailure(sql, customer.id, ev, now);
      return result(decision.note);
    }

    case 'mandate_revoked':
    case 'subscription_status': {
      if (!customer) return result(`${ev.kind} without a customer`);
      const value = ev.kind === 'mandate_revoked' ? 'revoked' : String(ev.detail?.status ?? 'unknown');
      const column = ev.kind === 'mandate_revoked' ? 'mandate_status' : 'subscription_status';
      await sql.query(`UPDATE customers SET ${column} = $2, updated_at = $3 WHERE id = $1`, [customer.id, value, now]);
      await addHistory(sql, { merchantId: ev.merchantId, entity: 'customer', entityId: customer.id, status: ev.kind === 'mandate_revoked' ? 'mandate_revoked' : `subscription_${value}`, reason: ev.failure?.reason ?? null, source: ev.provider, occurredAt: ev.occurredAt, detail: { event: ev.providerEventType, ...ev.detail } }, now);
      return result(`${column} is ${value}`);
    }

    case 'ignored':
      // The connector may say why it ignored an event of a type it acts on (an inactive mandate
      // whose customer it could not learn): that goes to the event's sync-log line.
      return result(typeof ev.detail?.note === 'string' ? `ignored: ${ev.detail.note}` : 'ignored event type');
  }
}

/** Has this PSP disputed the invoice before (its timeline says so)? */
async function disputedByBefore(sql: Sql, invoiceId: string, provider: string): Promise<boolean> {
  await flushHistory(sql); // a batch holds its history rows back: an earlier event of this batch counts too
  const r = await sql.query(`SELECT 1 FROM status_history WHERE entity = 'invoice' AND entity_id = $1 AND status = 'disputed' AND source = $2 LIMIT 1`, [invoiceId, provider]);
  return r.rows.length > 0;
}

interface CustomerFailure {
  customerId: string;
  code: string;
  reason: string;
  at: Date;
  now: Date;
}

/**
 * A batch's customers' last failures in one statement. Per customer only the latest failure is
 * written (the last of equals): applying them one by one, each only when not older than the stored
 * one, ends in the same row.
 */
async function writeCustomerFailures(sql: Sql, rows: CustomerFailure[]): Promise<void> {
  const latest = new Map<string, CustomerFailure>();
  for (const r of rows) {
    const seen = latest.get(r.customerId);
    if (!seen || r.at.getTime() >= seen.at.getTime()) latest.set(r.customerId, r);
  }
  const xs = [...latest.values()];
  await sql.query(
    `UPDATE customers c SET last_failure_code = x.code, last_failure_reason = x.reason, last_failure_at = x.at, updated_at = x.now
       FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS x(id, code, reason, at, now)
      WHERE c.id = x.id AND (c.last_failure_at IS NULL OR c.last_failure_at <= x.at)`,
    [xs.map((x) => x.customerId), xs.map((x) => x.code), xs.map((x) => x.reason), xs.map((x) => x.at), xs.map((x) => x.now)],
  );
}

async function noteCustomerFailure(sql: Sql, customerId: string, ev: PaymentEvent, now: Date): Promise<void> {
  if (!ev.failure) return;
  // In a batch: with the batch's others, at its end (src/store/deferred.ts); nothing in a batch reads it back.
  const failure: CustomerFailure = { customerId, code: ev.failure.code, reason: ev.failure.reason, at: new Date(ev.occurredAt), now };
  if (holdBack(sql, 'customer_failures', [failure], writeCustomerFailures)) return;
  await sql.query(
    `UPDATE customers SET last_failure_code = $2, last_failure_reason = $3, last_failure_at = $4, updated_at = $5
     WHERE id = $1 AND (last_failure_at IS NULL OR last_failure_at <= $4)`,
    [customerId, ev.failure.code, ev.failure.reason, new Date(ev.occurredAt), now],
  );
}
