/**
 * A hub for notification tests, built by createHub from the e2e config (test/support/stack.ts)
 * with extra merchant/partner YAML, on an in-memory PGlite (or a given database), with no
 * background work: a test writes the ledger rows it needs, runs the scanner and calls the stages
 * itself. Helpers seed a customer, invoice, case and claim, add history, and claim outbox rows the
 * way the runner does.
 */
import { parseConfig } from '../../src/config/load';
import { testSecret } from '../support/secrets';
import { createHub, type Hub } from '../../src/hub';
import { createLogger } from '../../src/observability/logger';
import { createPglite } from '../../src/store/pglite';
import type { Database } from '../../src/store/db';
import type { HubContext } from '../../src/context';
import { addHistory, type HistoryEntry } from '../../src/ledger/history';
import { claimRow, type StoredOutboxRow } from '../../src/outbox/outbox';
import { newId } from '../../src/domain/ids';
import { testConfigYaml } from '../support/stack';

export interface NotifyHub {
  hub: Hub;
  ctx: HubContext;
  stop(): Promise<void>;
}

export async function notifyHub(o: { acmeExtra?: string; stripeExtra?: string; partnerExtra?: string; db?: Database; simUrl?: string } = {}): Promise<NotifyHub> {
  const config = parseConfig(
    testConfigYaml({
      simUrl: o.simUrl ?? 'http://127.0.0.1:9', hubPort: 0, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45,
      acmeExtra: o.acmeExtra, stripeExtra: o.stripeExtra, partnerExtra: o.partnerExtra,
    }),
    {},
  );
  const db = o.db ?? (await createPglite());
  const hub = await createHub({ config, db, logger: createLogger({ silent: true }) });
  return {
    hub,
    ctx: hub.ctx,
    async stop() {
      await hub.stop();
      if (!o.db) await db.close();
    },
  };
}

export interface Seeded {
  customerId: string;
  invoiceId: string;
  caseId: string | null;
  claimId: string | null;
}

/** A customer with one invoice; with `partnerRef` (or `inCase`) also a case at the partner and a claim for the invoice. */
export async function seedInvoice(
  ctx: HubContext,
  o: { merchantId?: string; ref: string; provider?: string; amount?: number; status?: string; claimStatus?: string; inCase?: boolean; partnerRef?: string; customerRef?: string; failed?: boolean },
): Promise<Seeded> {
  const merchantId = o.merchantId ?? 'acme';
  const provider = o.provider ?? 'stripe';
  const now = new Date();
  return ctx.db.tx(async (sql) => {
    const customerId = newId('cust');
    await sql.query(
      `INSERT INTO customers (id, merchant_id, provider, provider_ref, name, email, country, type) VALUES ($1,$2,$3,$4,'Jan Jansen','jan@example.nl','NL','consumer')`,
      [customerId, merchantId, provider, o.customerRef ?? `cus_${customerId.slice(5, 15)}`],
    );
    const invoiceId = newId('inv');
    const failed = o.failed ?? true;
    await sql.query(
      `INSERT INTO invoices (id, merchant_id, customer_id, provider, provider_ref, currency, amount_due, status, failure_code, failure_reason, failure_final, failure_count, first_failed_at, last_failed_at)
       VALUES ($1,$2,$3,$4,$5,'EUR',$6,$7,$8,$9,$10,$11,$12,$12)`,
      [invoiceId, merchantId, customerId, provider, o.ref, o.amount ?? 4900, o.status ?? 'submitted', failed ? 'insufficient_funds' : null, failed ? 'insufficient_funds' : null, failed, failed ? 1 : 0, failed ? now : null],
    );
    if (!o.inCase && !o.partnerRef) return { customerId, invoiceId, caseId: null, claimId: null };
    const caseId = newId('cse');
    const claimId = newId('clm');
    await sql.query(
      `INSERT INTO cases (id, merchant_id, customer_id, partner_id, partner_ref, status, currency, submitted_at) VALUES ($1,$2,$3,'refagency',$4,'in_collection','EUR',$5)`,
      [caseId, merchantId, customerId, o.partnerRef ?? null, o.partnerRef ? now : null],
    );
    await sql.query(
      `INSERT INTO claims (id, case_id, invoice_id, merchant_id, principal, currency, status, sent_at) VALUES ($1,$2,$3,$4,$5,'EUR',$6,$7)`,
      [claimId, caseId, invoiceId, merchantId, o.amount ?? 4900, o.claimStatus ?? o.status ?? 'in_collection', o.partnerRef ? now : null],
    );
    await sql.query(`UPDATE invoices SET case_id = $2 WHERE id = $1`, [invoiceId, caseId]);
    return { customerId, invoiceId, caseId, claimId };
  });
}

export async function history(ctx: HubContext, e: Omit<HistoryEntry, 'occurredAt' | 'merchantId'> & { merchantId?: string; occurredAt?: Date | string }): Promise<number> {
  const at = new Date();
  await ctx.db.tx((sql) => addHistory(sql, { merchantId: 'acme', occurredAt: at, ...e }, at));
  const r = await ctx.db.query<{ id: number }>(`SELECT max(id)::int AS id FROM status_history`);
  return Number(r.rows[0].id);
}

/** Outbox rows of a kind, oldest first. */
export async function outboxRows(ctx: HubContext, kind: string): Promise<StoredOutboxRow[]> {
  return (await ctx.db.query<StoredOutboxRow>(`SELECT * FROM outbox WHERE kind = $1 ORDER BY id`, [kind])).rows;
}

/** Claim a row as the runner does (in flight, attempt counted); throws if it cannot be claimed. */
export async function claim(ctx: HubContext, id: number): Promise<StoredOutboxRow> {
  const row = await ctx.db.tx((sql) => claimRow(sql, id, new Date(), 30_000));
  if (!row) throw new Error(`outbox row ${id} could not be claimed`);
  return row;
}

/** The runner's bookkeeping after a retryable failure, without waiting for the backoff. */
export async function backToPending(ctx: HubContext, id: number, status?: number): Promise<void> {
  await ctx.db.query(`UPDATE outbox SET status = 'pending', locked_until = NULL, next_attempt_at = now() - interval '1 second', last_status = $2 WHERE id = $1`, [id, status ?? null]);
}

/** Drawn fresh per test file: the hub refuses a secret that is not random (src/config/secrets.ts). */
export const WEBHOOK_SECRET = testSecret('standardWebhook');
