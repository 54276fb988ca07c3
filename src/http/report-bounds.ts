/**
 * Bounds of the leakage report (issue 13 item 7). The report (reports/leakage.ts) reads every
 * failed payment of the period into memory, classifies and returns them all, as JSON or CSV; a
 * merchant with years of failures could make one call hold hundreds of thousands of rows. So:
 *
 *  - a period given with `from` may span at most `reports.leakageMaxPeriodDays` (to `to`, or now);
 *  - whatever the period (also the open one the dashboard's overview asks for), it may hold at most
 *    `reports.leakageMaxRows` failed payments — counted with one index-backed count first.
 *
 * Either answers 400 with a message that says the limit and how to narrow the request. Runs after
 * the merchant's token and API budget (app.ts); a malformed `from`/`to` is left to the route.
 */
import type { RequestHandler } from 'express';
import type { HubContext } from '../context';
import { HttpError } from './errors';
import { DAY_MS } from '../domain/clock';

const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** A usable time, else undefined: the route itself answers a malformed or out-of-range one with its 400. */
function timeOf(v: unknown): Date | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) || t < EARLIEST || t > LATEST ? undefined : new Date(t);
}

export function leakageBounds(ctx: HubContext): RequestHandler {
  return async (req, _res, next) => {
    const { leakageMaxPeriodDays, leakageMaxRows } = ctx.config.reports ?? { leakageMaxPeriodDays: 366, leakageMaxRows: 50_000 };
    const merchantId = req.merchantId!;
    const from = timeOf(req.query.from);
    const to = timeOf(req.query.to);
    if (from) {
      const end = to ?? ctx.clock.now();
      const days = (end.getTime() - from.getTime()) / DAY_MS;
      if (days > leakageMaxPeriodDays) {
        throw new HttpError(400, 'period_too_long', `the leakage report covers at most ${leakageMaxPeriodDays} days; from ${from.toISOString()} to ${end.toISOString()} is ${Math.ceil(days)} days — ask for a shorter period (from and to)`);
      }
    }
    const params: unknown[] = [merchantId];
    const where = ['merchant_id = $1', 'failure_count > 0'];
    if (from) {
      params.push(from);
      where.push(`first_failed_at >= $${params.length}`);
    }
    if (to) {
      params.push(to);
      where.push(`first_failed_at < $${params.length}`);
    }
    // Counting stops one past the cap: a merchant far over it costs no more than one at it.
    params.push(leakageMaxRows + 1);
    const r = await ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM (SELECT 1 FROM invoices WHERE ${where.join(' AND ')} LIMIT $${params.length}) x`, params);
    if (Number(r.rows[0].n) > leakageMaxRows) {
      throw new HttpError(400, 'too_many_rows', `the period holds more than ${leakageMaxRows} failed payments, the most one leakage report returns — ask for a shorter period (from and to)`);
    }
    next();
  };
}
