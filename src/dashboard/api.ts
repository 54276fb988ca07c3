/**
 * Dashboard-only merchant routes, beside the merchant API (contract §6) and under the same
 * merchant token: CSV exports of the sync log (same filters as `/v1/sync-log`) and of the
 * leakage report, and case totals by status and partner. Every query is scoped by the merchant
 * of the token, like the rest of the merchant API.
 */
import express, { type Router, type Request, type Response } from 'express';
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import { merchantAuthOptions, requireMerchant } from '../http/merchant-auth';
import { HttpError } from '../http/errors';
import { buildLeakageReport } from '../reports/leakage';
import { minorToDecimal } from '../domain/money';
import { csvLine, type CsvValue } from './csv';
import { inboundPayloadJoin, inboundRequestView } from '../exchanges/exchange-log';
import { redactText } from '../observability/redact';

/** Ids per query of the CSV export, to start with; widened where the merchant's rows are sparse. */
const WINDOW = 2000;
const MAX_WINDOW = 1_000_000;
const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);

/** Same rules as the merchant API's parameters: one plain value, not too long, no control characters. */
const MAX_PARAM_LENGTH = 256;
const CONTROL = /[\u0000-\u001f\u007f]/;

function q(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new HttpError(400, 'bad_request', `${name} must be given once, as a plain value`);
  if (v.length > MAX_PARAM_LENGTH) throw new HttpError(400, 'bad_request', `${name} is longer than ${MAX_PARAM_LENGTH} characters`);
  if (CONTROL.test(v)) throw new HttpError(400, 'bad_request', `${name} contains control characters`);
  return v;
}

const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function isoParam(req: Request, name: string): Date | undefined {
  const v = q(req, name);
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t) || t < EARLIEST || t > LATEST) throw new HttpError(400, 'bad_request', `${name} must be an ISO 8601 time between 1970 and 9999`);
  return new Date(t);
}

async function hubIdOf(sql: Sql, table: 'customers' | 'invoices', merchantId: string, ref: string): Promise<string | null> {
  const r = await sql.query<{ id: string }>(`SELECT id FROM ${table} WHERE merchant_id = $1 AND (id = $2 OR provider_ref = $2) ORDER BY created_at LIMIT 1`, [merchantId, ref]);
  return r.rows[0]?.id ?? null;
}

/** The sync-log filters of `/v1/sync-log`, as a WHERE clause scoped to the merchant. */
export async function syncLogWhere(sql: Sql, merchantId: string, req: Request): Promise<{ where: string[]; params: unknown[] }> {
  const where = ['merchant_id = $1'];
  const params: unknown[] = [merchantId];
  const add = (part: (n: number) => string, v: unknown) => {
    params.push(v);
    where.push(part(params.length));
  };
  const customer = q(req, 'customer');
  if (customer) add((n) => `customer_id = $${n}`, (await hubIdOf(sql, 'customers', merchantId, customer)) ?? '-');
  const invoice = q(req, 'invoice');
  if (invoice) add((n) => `invoice_id = $${n}`, (await hubIdOf(sql, 'invoices', merchantId, invoice)) ?? '-');
  const direction = q(req, 'direction');
  if (direction) {
    if (direction !== 'in' && direction !== 'out') throw new HttpError(400, 'bad_request', 'direction must be in or out');
    add((n) => `direction = $${n}`, direction);
  }
  const outcome = q(req, 'outcome');
  if (outcome) add((n) => `outcome = $${n}`, outcome);
  const kase = q(req, 'case');
  if (kase) add((n) => `case_id = $${n}`, kase);
  const from = isoParam(req, 'from');
  if (from) add((n) => `created_at >= $${n}`, from);
  const to = isoParam(req, 'to');
  if (to) add((n) => `created_at < $${n}`, to);
  return { where, params };
}

function stamp(now: Date): string {
  return now.toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function startCsv(res: Response, filename: string) {
  res.status(200);
  res.setHeader('Content-Type', 'text/csv; charset=utf-8');
  res.setHeader('Content-Disposition', `attachment; filename="${filename}"`);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // A byte-order mark so spreadsheet programs read the file as UTF-8 (names with umlauts).
  res.write('\uFEFF');
}

/** Write and wait when the socket's buffer is full, so a large export never piles up in memory. */
function write(res: Response, chunk: string): Promise<void> {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** In the order of the json_build_array in the export's query. */
const SYNC_LOG_COLUMNS = ['id', 'at', 'direction', 'party', 'operation', 'outcome', 'http_status', 'latency_ms', 'customer_id', 'invoice_id', 'case_id', 'delivery_id', 'summary'];

const LEAKAGE_COLUMNS = [
  'invoice_id', 'invoice_ref', 'provider', 'number', 'customer_id', 'bucket', 'unexplained', 'why', 'status', 'resolution',
  'amount_due', 'currency', 'failure_reason', 'first_failed_at', 'handover_due_at', 'case_id',
  // Until when the invoice waits in its category (the gate, the merchant's hold, the hand-over date).
  'until',
];

export function dashboardApiRouter(ctx: HubContext): Router {
  const router = express.Router();
  const auth = requireMerchant(merchantAuthOptions(ctx));

  /**
   * The sync log as CSV, newest first, with the filters of `/v1/sync-log` (customer, invoice,
   * case, direction, outcome, from, to). `payloads=1` adds the (already redacted) request and
   * response as JSON columns. Read in windows of ids, newest first, and streamed.
   */
  router.get('/v1/sync-log.csv', auth, async (req, res) => {
    const merchantId = req.merchantId!;
    const { where, params } = await syncLogWhere(ctx.db, merchantId, req);
    const payloads = q(req, 'payloads') === '1';
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    startCsv(res, `sync-log-${merchantId}-${stamp(ctx.clock.now())}.csv`);
    try {
      await write(res, csvLine(payloads ? [...SYNC_LOG_COLUMNS, 'request', 'response'] : SYNC_LOG_COLUMNS));
      // Walk down the id range in windows rather than with LIMIT and `id < last`: without fresh
      // planner statistics (PGlite never collects them) each LIMIT page can sort everything below
      // its cursor, which makes a full export quadratic. A window bounds every query; its width
      // follows how dense the merchant's rows are.
      const span = (await ctx.db.query<{ lo: string | null; hi: string | null }>(`SELECT min(id) AS lo, max(id) AS hi FROM exchanges WHERE ${where.join(' AND ')}`, params)).rows[0];
      const lo = span?.lo == null ? null : Number(span.lo);
      let hi = span?.hi == null ? null : Number(span.hi);
      let width = WINDOW;
      while (!closed && lo !== null && hi !== null && hi >= lo) {
        const p = [...params, hi, hi - width];
        // One JSON text per row: the embedded driver decodes one column far faster than thirteen.
        // A webhook's entry keeps no copy of its payload: with payloads, it is read from the inbound event (exchange-log.ts).
        const r = await ctx.db.query<{ j: string }>(
          `SELECT json_build_array(x.id, x.created_at, x.direction, x.party, x.operation, x.outcome, x.http_status, x.latency_ms, x.customer_id, x.invoice_id, x.case_id, x.outbox_id, x.summary
             ${payloads ? ', x.request, x.response, inbound_payload_of.payload' : ''})::text AS j
           FROM (SELECT * FROM exchanges WHERE ${where.join(' AND ')} AND id <= $${p.length - 1} AND id > $${p.length}) x
           ${payloads ? inboundPayloadJoin('x') : ''} ORDER BY x.id DESC`,
          p,
        );
        let chunk = '';
        for (const { j } of r.rows) {
          const x = JSON.parse(j) as unknown[];
          const cells = x.slice(0, 13) as CsvValue[];
          cells[1] = iso(x[1] as string);
          // Summaries are masked when written (exchange-log.ts); rows written before that are masked here.
          if (typeof cells[12] === 'string') cells[12] = redactText(cells[12]);
          const request = x[13] ?? inboundRequestView(x[15]);
          if (payloads) cells.push(request == null ? null : JSON.stringify(request), x[14] == null ? null : JSON.stringify(x[14]));
          chunk += csvLine(cells);
        }
        if (chunk) await write(res, chunk);
        hi -= width;
        if (r.rows.length < WINDOW / 4) width = Math.min(width * 2, MAX_WINDOW);
        else if (r.rows.length > WINDOW) width = Math.max(Math.floor(width / 2), WINDOW / 4);
      }
      res.end();
    } catch (err) {
      // Headers are gone: the only honest signal left is a broken download.
      ctx.logger.warn('sync-log CSV export failed', { merchantId, error: (err as Error).message });
      res.destroy(err as Error);
    }
  });

  /** The leakage report as CSV: one row per failed payment with its bucket; unexplained ones marked. */
  router.get('/v1/reports/leakage.csv', auth, async (req, res) => {
    const merchantId = req.merchantId!;
    const from = isoParam(req, 'from');
    const to = isoParam(req, 'to');
    const report = await buildLeakageReport(ctx.db, merchantId, { from, to, now: ctx.clock.now(), merchant: ctx.merchants.get(merchantId) });
    startCsv(res, `leakage-${merchantId}-${stamp(ctx.clock.now())}.csv`);
    let out = csvLine(LEAKAGE_COLUMNS);
    for (const i of report.items) {
      out += csvLine([
        i.invoiceId, i.ref, i.provider, i.number, i.customerId, i.bucket, i.bucket === 'unexplained' ? 'yes' : 'no', i.why ?? null, i.status, i.resolution,
        minorToDecimal(i.amountDue.value, i.amountDue.currency), i.amountDue.currency, i.failureReason, i.firstFailedAt, i.handoverDueAt, i.caseId, i.until,
      ]);
    }
    res.end(out);
  });

  /**
   * Case totals by status and partner (every case of the merchant, not one page): count,
   * principal and collected per currency. `partner` and `status` narrow it like `/v1/cases`.
   */
  router.get('/v1/case-totals', auth, async (req, res) => {
    const merchantId = req.merchantId!;
    const where = ['c.merchant_id = $1'];
    const params: unknown[] = [merchantId];
    for (const [name, col] of [['status', 'c.status'], ['partner', 'c.partner_id']] as const) {
      const v = q(req, name);
      if (v === undefined) continue;
      params.push(v);
      where.push(`${col} = $${params.length}`);
    }
    const r = await ctx.db.query<{ status: string; partner_id: string; currency: string; cases: string; principal: string; collected: string }>(
      `SELECT c.status, c.partner_id, c.currency, count(*) AS cases,
              COALESCE(sum(t.principal), 0) AS principal, COALESCE(sum(t.collected), 0) AS collected
       FROM cases c
       LEFT JOIN (SELECT case_id, sum(principal) AS principal, sum(amount_collected) AS collected FROM claims WHERE merchant_id = $1 GROUP BY case_id) t
         ON t.case_id = c.id
       WHERE ${where.join(' AND ')}
       GROUP BY c.status, c.partner_id, c.currency
       ORDER BY c.status, c.partner_id, c.currency`,
      params,
    );
    const rows = r.rows.map((x) => ({
      status: x.status, partner: x.partner_id, currency: x.currency, cases: Number(x.cases),
      principal: { value: Number(x.principal), currency: x.currency }, collected: { value: Number(x.collected), currency: x.currency },
    }));
    const total = new Map<string, { currency: string; cases: number; principal: number; collected: number }>();
    for (const x of rows) {
      const t = total.get(x.currency) ?? { currency: x.currency, cases: 0, principal: 0, collected: 0 };
      t.cases += x.cases;
      t.principal += x.principal.value;
      t.collected += x.collected.value;
      total.set(x.currency, t);
    }
    res.json({
      rows,
      total: [...total.values()].map((t) => ({ currency: t.currency, cases: t.cases, principal: { value: t.principal, currency: t.currency }, collected: { value: t.collected, currency: t.currency } })),
    });
  });

  return router;
}
