/**
 * Requests that fail verification — a webhook whose signature does not match, an agency push whose
 * token is forged — are neither stored nor charged to the merchant's or partner's budget (issue 13
 * item 2, "verify first, then charge the budget"). Instead:
 *
 *  - they are charged to a small token bucket of their source address; an address that has emptied
 *    it is answered 429 before its next body is read (so a flood costs little CPU and no I/O);
 *  - they are counted (prom-client `hub_verification_failures_total{endpoint, party}`);
 *  - they are written to the sync log as ONE aggregated line per window per (merchant, party,
 *    operation): the first refusal of a window writes the line at once — a merchant with a
 *    misconfigured secret sees it immediately — and later refusals in the window only raise its
 *    count, written onto that same line when the window closes. A flood of forgeries cannot fill
 *    the merchant's sync log or the database.
 *
 * The windows live in this process's memory: with N api processes a flood gives at most N lines
 * per window. The counting (noteRejection) is a pure function; SQL stays in RejectedDeliveryLog.
 */
import type { Request } from 'express';
import type { Database } from '../store/db';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { redactText } from '../observability/redact';
import { type LimitRule, type TokenBuckets, rateLimited, sourceAddress } from '../http/rate-limit';

/** One refused request. */
export interface Rejection {
  /** The merchant whose sync log shows it (null for an agency push). */
  merchantId: string | null;
  /** The PSP or partner id. */
  party: string;
  /** `webhook` or `push`. */
  operation: string;
  status: number;
  reason: string;
  address: string;
}

/** The refusals of one (merchant, party, operation) within one window. */
export interface RejectionWindow {
  key: string;
  merchantId: string | null;
  party: string;
  operation: string;
  /** ms since the epoch. */
  startedAt: number;
  count: number;
  /** Distinct source addresses seen (at most MAX_ADDRESSES kept; `moreAddresses` says when there were more). */
  addresses: Set<string>;
  moreAddresses: boolean;
  statuses: Record<string, number>;
  firstReason: string;
  lastStatus: number;
}

const MAX_ADDRESSES = 100;

export const windowKey = (r: Pick<Rejection, 'merchantId' | 'party' | 'operation'>) => `${r.merchantId ?? ''}\u0000${r.party}\u0000${r.operation}`;

/**
 * Count one refusal into `windows` (mutated: it is this process's state). `opened` is a window this
 * refusal started (its line is to be written now); `closed` a window of the same key that had run
 * out (its final count is to be written).
 */
export function noteRejection(windows: Map<string, RejectionWindow>, r: Rejection, nowMs: number, windowMs: number): { window: RejectionWindow; opened: boolean; closed: RejectionWindow | null } {
  const key = windowKey(r);
  let w = windows.get(key);
  let closed: RejectionWindow | null = null;
  if (w && nowMs >= w.startedAt + windowMs) {
    closed = w;
    w = undefined;
  }
  const opened = !w;
  if (!w) {
    w = { key, merchantId: r.merchantId, party: r.party, operation: r.operation, startedAt: nowMs, count: 0, addresses: new Set(), moreAddresses: false, statuses: {}, firstReason: r.reason, lastStatus: r.status };
    windows.set(key, w);
  }
  w.count++;
  w.lastStatus = r.status;
  w.statuses[String(r.status)] = (w.statuses[String(r.status)] ?? 0) + 1;
  if (w.addresses.has(r.address) || w.addresses.size < MAX_ADDRESSES) w.addresses.add(r.address);
  else w.moreAddresses = true;
  return { window: w, opened, closed };
}

/** The sync-log line of a window, as written when it opens and again when it closes. */
export function windowLine(w: RejectionWindow, windowSeconds: number): { summary: string; response: Record<string, unknown> } {
  const addresses = `${w.addresses.size}${w.moreAddresses ? '+' : ''}`;
  const summary =
    w.count === 1
      ? w.firstReason
      : `${w.firstReason} — ${w.count} requests refused in this ${windowSeconds} s window, from ${addresses} address${w.addresses.size === 1 && !w.moreAddresses ? '' : 'es'}`;
  return {
    summary: redactText(summary),
    response: { refused: w.count, addresses: w.addresses.size, moreAddresses: w.moreAddresses, statuses: w.statuses, windowStartedAt: new Date(w.startedAt).toISOString(), windowSeconds },
  };
}

/** The sync-log edge: one row per window, inserted when it opens, its count updated when it closes. */
export class RejectedDeliveryLog {
  private readonly windows = new Map<string, RejectionWindow>();
  private readonly rows = new Map<RejectionWindow, Promise<number | null>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly deps: { db: Database; logger: Logger; now(): Date },
    readonly windowSeconds: number,
  ) {}

  note(r: Rejection): void {
    const nowMs = this.deps.now().getTime();
    const windowMs = this.windowSeconds * 1000;
    const { window, opened, closed } = noteRejection(this.windows, r, nowMs, windowMs);
    if (closed) this.track(this.close(closed));
    if (!opened) return;
    this.rows.set(window, this.insert(window));
    // The window's count is written when it ends, even if no later refusal comes to close it.
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.windows.get(window.key) === window) this.track(this.close(window));
    }, windowMs);
    t.unref();
    this.timers.add(t);
  }

  /** Write every open window's count now (tests, shutdown). */
  async flushAll(): Promise<void> {
    for (const w of [...this.windows.values()]) this.track(this.close(w));
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async insert(w: RejectionWindow): Promise<number | null> {
    const { summary, response } = windowLine(w, this.windowSeconds);
    try {
      const r = await this.deps.db.query<{ id: string }>(
        `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, http_status, summary, response, created_at)
         VALUES ($1, 'in', $2, $3, 'rejected', $4, $5, $6::jsonb, $7) RETURNING id`,
        [w.merchantId, w.party, w.operation, w.lastStatus, summary, JSON.stringify(response), new Date(w.startedAt)],
      );
      return Number(r.rows[0].id);
    } catch (err) {
      // The refusal stands (nothing was stored); only its log line is missing. Counted in metrics anyway.
      this.deps.logger.warn('could not write the sync-log line of refused requests', { party: w.party, error: (err as Error).message });
      return null;
    }
  }

  private async close(w: RejectionWindow): Promise<void> {
    if (this.windows.get(w.key) === w) this.windows.delete(w.key);
    const row = this.rows.get(w);
    this.rows.delete(w);
    const id = row ? await row : null;
    if (id === null || w.count <= 1) return;
    const { summary, response } = windowLine(w, this.windowSeconds);
    try {
      await this.deps.db.query(`UPDATE exchanges SET summary = $2, response = $3::jsonb, http_status = $4 WHERE id = $1`, [id, summary, JSON.stringify(response), w.lastStatus]);
    } catch (err) {
      this.deps.logger.warn('could not update the sync-log line of refused requests', { party: w.party, error: (err as Error).message });
    }
  }
}

/** What the webhook and push routes call around verification. */
export interface VerificationGuard {
  /** Throws 429 when the request's address has failed verification too often lately; call before reading the body. */
  checkAddress(req: Request): void;
  /** Record one refused request: charged to its address, counted, and in the sync log once per window. */
  refused(req: Request, r: Omit<Rejection, 'address'> & { endpoint: 'webhook' | 'push' }): void;
}

export function createVerificationGuard(deps: { buckets: TokenBuckets; log: RejectedDeliveryLog; metrics: Metrics }): VerificationGuard {
  const rule: LimitRule = {
    buckets: deps.buckets,
    key: sourceAddress,
    describe: (req) => `requests failing verification from address ${sourceAddress(req)}`,
  };
  return {
    checkAddress(req) {
      const wait = deps.buckets.peek(sourceAddress(req));
      if (wait === 0) return;
      deps.metrics.rateLimited.inc({ scope: 'failed_verification' });
      throw rateLimited(rule, req, wait);
    },
    refused(req, r) {
      const address = sourceAddress(req);
      deps.buckets.take(address);
      deps.metrics.verificationFailures.inc({ endpoint: r.endpoint, party: r.party });
      deps.log.note({ merchantId: r.merchantId, party: r.party, operation: r.operation, status: r.status, reason: r.reason, address });
    },
  };
}
