/**
 * Pushes the simulated agency's updates to the hub (`POST {hub}/v1/partners/:partnerId/events`,
 * contract §5) with an HS256 JWT, retrying failures with backoff. Delivery is deliberately
 * imperfect when asked: duplicates (`--duplicate-rate`) and shuffled small batches
 * (`--out-of-order`) are what the hub has to survive from real agencies. Whatever happens here,
 * every update stays in the pull feed.
 */
import crypto from 'node:crypto';
import axios from 'axios';
import jwt from 'jsonwebtoken';
import type { AgencyUpdate } from '../../src/domain/types';
import type { Prng } from './prng';
import type { Faults } from './schemas';

/** Push tokens are short-lived: each delivery attempt signs a fresh one. */
export const PUSH_TOKEN_TTL_SECONDS = 60;

export interface PusherOptions {
  hubUrl: string;
  partnerId: string;
  hubId: string;
  outSecret: string;
  /** Read on every delivery, so `/_sim/faults` changes apply at once. */
  faults: () => Faults;
  prng: Prng;
  /** Attempts per batch, the first included. */
  attempts: number;
  /** First retry delay; doubles each time, with jitter. */
  backoffMs: number;
  requestTimeoutMs: number;
  /** Out-of-order mode collects updates this long before shuffling them. */
  outOfOrderWindowMs: number;
  now: () => Date;
  log: (message: string) => void;
}

export interface PushLogEntry {
  at: string;
  eventIds: string[];
  attempt: number;
  /** The hub's HTTP status; null when no answer came (network error, timeout). */
  status: number | null;
  /** This delivery repeats one already accepted (duplicate fault). */
  duplicate: boolean;
  error?: string;
}

interface Delivery {
  events: AgencyUpdate[];
  duplicate: boolean;
}

export class Pusher {
  private pending: AgencyUpdate[] = [];
  private readonly queue: Delivery[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private sending = false;
  private stopped = false;
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private readonly abort = new AbortController();
  private idleWaiters: (() => void)[] = [];
  private readonly entries: PushLogEntry[] = [];
  private readonly url: string;

  constructor(private readonly opts: PusherOptions) {
    this.url = `${opts.hubUrl.replace(/\/+$/, '')}/v1/partners/${encodeURIComponent(opts.partnerId)}/events`;
  }

  enqueue(update: AgencyUpdate): void {
    if (this.stopped) return;
    this.pending.push(update);
    if (this.flushTimer) return;
    // In order: a zero delay still batches every update of one lifecycle step into one push.
    const delay = this.opts.faults().outOfOrder ? this.opts.outOfOrderWindowMs : 0;
    this.flushTimer = setTimeout(() => this.flush(), delay);
    this.flushTimer.unref();
  }

  pushLog(): PushLogEntry[] {
    return this.entries.slice();
  }

  /** Resolves once nothing is buffered, queued or in flight (tests wait on this). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.pending = [];
    this.queue.length = 0;
    this.abort.abort();
    for (const s of this.sleeps) {
      clearTimeout(s.timer);
      s.resolve();
    }
    this.sleeps.clear();
    this.wakeIdle();
  }

  private isIdle(): boolean {
    return this.stopped || (!this.sending && !this.flushTimer && this.pending.length === 0 && this.queue.length === 0);
  }

  private wakeIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private flush(): void {
    this.flushTimer = null;
    const { outOfOrder, pushBatch } = this.opts.faults();
    let updates = this.pending;
    this.pending = [];
    if (outOfOrder) {
      updates = this.opts.prng.shuffle(updates);
      // Small batches of random size, so order is broken both within and across pushes.
      while (updates.length) this.queue.push({ events: updates.splice(0, 1 + this.opts.prng.int(pushBatch)), duplicate: false });
    } else {
      while (updates.length) this.queue.push({ events: updates.splice(0, pushBatch), duplicate: false });
    }
    void this.pump();
  }

  /** One delivery at a time, so without the out-of-order fault the hub sees updates in seq order. */
  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (!this.stopped && this.queue.length) {
        const delivery = this.queue.shift()!;
        const delivered = await this.deliver(delivery);
        // Drawn for every first delivery, so the random stream does not depend on the rate.
        const roll = delivery.duplicate ? 1 : this.opts.prng.next();
        if (delivered && roll < this.opts.faults().duplicateRate) {
          this.queue.unshift({ events: delivery.events, duplicate: true });
        }
      }
    } finally {
      this.sending = false;
      this.wakeIdle();
    }
  }

  private async deliver(d: Delivery): Promise<boolean> {
    const ids = d.events.map((e) => e.id);
    for (let attempt = 1; attempt <= this.opts.attempts && !this.stopped; attempt++) {
      const entry: PushLogEntry = { at: this.opts.now().toISOString(), eventIds: ids, attempt, status: null, duplicate: d.duplicate };
      this.entries.push(entry);
      let retryAfterMs: number | undefined;
      try {
        const res = await axios.post(
          this.url,
          { events: d.events },
          {
            headers: { Authorization: `Bearer ${this.token()}`, 'Content-Type': 'application/json' },
            timeout: this.opts.requestTimeoutMs,
            signal: this.abort.signal,
            validateStatus: () => true,
          },
        );
        entry.status = res.status;
        if (res.status >= 200 && res.status < 300) return true;
        entry.error = summarize(res.data);
        // Other 4xx mean the hub will never take this batch as it is; retrying only repeats the refusal.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          this.opts.log(`push ${ids.join(',')} refused by the hub with ${res.status}: ${entry.error}`);
          return false;
        }
        const retryAfter = Number(res.headers['retry-after']);
        if (Number.isFinite(retryAfter) && retryAfter >= 0) retryAfterMs = retryAfter * 1000;
      } catch (err) {
        if (this.stopped) return false;
        entry.error = (err as Error).message;
      }
      if (attempt < this.opts.attempts) {
        const backoff = this.opts.backoffMs * 2 ** (attempt - 1) * (0.5 + this.opts.prng.next());
        await this.sleep(Math.min(retryAfterMs ?? backoff, 60_000));
      }
    }
    if (!this.stopped) this.opts.log(`push ${ids.join(',')} gave up after ${this.opts.attempts} attempts; the updates stay in the pull feed`);
    return false;
  }

  private token(): string {
    return jwt.sign({ iat: Math.floor(this.opts.now().getTime() / 1000) }, this.opts.outSecret, {
      algorithm: 'HS256',
      issuer: this.opts.partnerId,
      audience: this.opts.hubId,
      expiresIn: PUSH_TOKEN_TTL_SECONDS,
      jwtid: crypto.randomUUID(),
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const s = {
        timer: setTimeout(() => {
          this.sleeps.delete(s);
          resolve();
        }, ms),
        resolve,
      };
      s.timer.unref();
      this.sleeps.add(s);
    });
  }
}

function summarize(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text === undefined ? '' : text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
