/**
 * The load: pools of signed Stripe `invoice.payment_failed` webhooks (every one a new event,
 * invoice and customer, so every request is stored and becomes its own case), sent by
 * autocannon (throughput, fixed rate) or by a paced open-loop sender that keeps the send time
 * of every event (end-to-end latency). Every loop is bounded in count and time and only ever
 * talks to 127.0.0.1.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { signStripe, stripeEvents } from '../../sim/psp/stripe-events';
import { percentile } from './stats';

export interface SignedEvent {
  body: string;
  header: string;
  /** Stripe invoice `number`: travels with the claim to the agency, so a case maps back to its event. */
  number: string;
}

/**
 * `count` signed events; the signature's timestamp is now, so the pool must be used within the
 * 300 s tolerance (the bench generates one right before each phase).
 */
export async function makePool(count: number, secret: string, tag: string, isAborted: () => boolean = () => false): Promise<SignedEvent[]> {
  const now = Math.floor(Date.now() / 1000);
  const pool: SignedEvent[] = new Array(count);
  for (let i = 0; i < count; i++) {
    // Let the event loop breathe: signals (Ctrl-C relayed by tsx) must be seen at once.
    if (i % 500 === 499) {
      await new Promise((r) => setImmediate(r));
      if (isAborted()) throw new Error('interrupted');
    }
    // The separator keeps pools of one phase apart (tag `e1a2` and its warm-up's `e1a2w`).
    const id = `${tag}x${i}`;
    const number = `BENCH-${tag}-${i}`;
    const event = stripeEvents.paymentFailed({
      invoice: `in_${id}`,
      customer: `cus_${id}`,
      amount: 1500 + (i % 50) * 100,
      currency: 'eur',
      number,
      subscription: `sub_${id}`,
      customerName: `Bench Customer ${i}`,
      customerEmail: `bench+${id}@example.com`,
      // A German consumer of a Dutch merchant: country rules apply (statutory costs) but no notice
      // term gates the hand-over, so every final failure goes to the agency at once.
      country: 'DE',
      created: now,
      attempt: 4,
      // No next attempt: Stripe has given up, so the failure is final and handed over at once.
      nextPaymentAttempt: null,
      failureCode: 'insufficient_funds',
      method: 'card',
    });
    const { body, header } = signStripe(event, secret, now);
    pool[i] = { body, header, number };
  }
  return pool;
}

function assertLoopback(url: string): URL {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1') throw new Error(`the bench only sends to 127.0.0.1, not ${u.hostname}`);
  return u;
}

export interface LoadResult {
  /** 2xx answers. */
  ok: number;
  /** Answers other than 2xx, and connection errors/timeouts. */
  failed: number;
  statuses: Record<string, number>;
  /** From the first request to the last answer, seconds. */
  elapsedS: number;
  /** ok / elapsedS. */
  rps: number;
  /** Latency of each 2xx answer, ms (float, from autocannon's per-response timing). */
  latenciesMs: number[];
  /** Pool entries used. */
  used: number;
  /** The run ended because the pool ran out (before its duration). */
  poolExhausted: boolean;
}

export interface CannonOptions {
  url: string;
  pool: SignedEvent[];
  connections: number;
  pipelining?: number;
  /** Seconds; the run also ends when the pool is used up (bounded in count). */
  durationS: number;
  /** Fixed rate (autocannon overallRate: a per-second quota spread over the connections). */
  overallRate?: number;
  /** Called with the running instance so an interrupt can stop it. */
  onInstance?: (stop: () => void) => void;
}

/** One autocannon run over a pool of distinct signed bodies. */
export function cannon(o: CannonOptions): Promise<LoadResult> {
  const u = assertLoopback(o.url);
  const connections = Math.max(1, Math.min(o.connections, o.pool.length));
  let next = 0;
  let exhausted = false;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let last = 0;
  return new Promise((resolve, reject) => {
    const pickBody = (req: autocannon.Request): autocannon.Request => {
      // `amount` = the pool's size, so autocannon asks for exactly that many bodies (each
      // connection gets its share and then closes); the guard only keeps an index in range.
      const ev = o.pool[Math.min(next, o.pool.length - 1)];
      next++;
      if (next >= o.pool.length) exhausted = true;
      return { ...req, body: ev.body, headers: { 'content-type': 'application/json', 'stripe-signature': ev.header } };
    };
    const started = performance.now();
    const instance = autocannon(
      {
        url: u.origin,
        connections,
        pipelining: o.pipelining ?? 1,
        duration: o.durationS,
        amount: o.pool.length,
        overallRate: o.overallRate,
        timeout: 30,
        requests: [{ method: 'POST', path: u.pathname, setupRequest: pickBody }],
      },
      (err) => {
        clearTimeout(hardStop);
        if (err) return reject(err);
        const elapsedS = ((last || performance.now()) - started) / 1000;
        resolve({
          ok,
          failed,
          statuses,
          elapsedS,
          rps: elapsedS > 0 ? ok / elapsedS : 0,
          latenciesMs: latencies,
          used: Math.min(next, o.pool.length),
          poolExhausted: exhausted && elapsedS < o.durationS * 0.98,
        });
      },
    );
    // amount (the pool) makes autocannon ignore `duration`; this keeps the time bound.
    const hardStop = setTimeout(() => instance.stop(), o.durationS * 1000);
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      last = performance.now();
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        latencies.push(responseTime);
      } else failed++;
    });
    instance.on('reqError', () => {
      failed++;
      statuses.error = (statuses.error ?? 0) + 1;
    });
    o.onInstance?.(() => instance.stop());
  });
}

export interface PacedResult {
  sent: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  /** Epoch ms (fractional) at which pool[i] was sent; NaN when not sent. */
  sentAt: Float64Array;
  /** Ack latency of pool[i], ms; NaN when no 2xx answer. */
  latencyMs: Float64Array;
  elapsedS: number;
  /** Sends that left more than 5 ms after their planned time (the sender itself fell behind). */
  late: number;
}

/**
 * Open-loop sender at a fixed `rate`: request i leaves at start + i/rate whatever the answers
 * do (no coordinated omission), over keep-alive connections. Bounded: `rate * seconds` sends,
 * and answers are waited for at most `graceS` after the last send.
 */
export async function paced(o: { url: string; pool: SignedEvent[]; rate: number; seconds: number; graceS?: number; isAborted?: () => boolean }): Promise<PacedResult> {
  const u = assertLoopback(o.url);
  const total = Math.min(o.pool.length, Math.round(o.rate * o.seconds));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const sentAt = new Float64Array(o.pool.length).fill(NaN);
  const latencyMs = new Float64Array(o.pool.length).fill(NaN);
  const statuses: Record<string, number> = {};
  let sent = 0;
  let answered = 0;
  let ok = 0;
  let late = 0;
  const t0 = performance.now();

  const send = (i: number) => {
    const ev = o.pool[i];
    const start = performance.now();
    if (start - (t0 + (i * 1000) / o.rate) > 5) late++;
    sentAt[i] = performance.timeOrigin + start;
    const req = http.request(
      { host: '127.0.0.1', port: Number(u.port), path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'stripe-signature': ev.header, 'content-length': Buffer.byteLength(ev.body) } },
      (res) => {
        res.resume();
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          statuses[code] = (statuses[code] ?? 0) + 1;
          if (code >= 200 && code < 300) {
            ok++;
            latencyMs[i] = performance.now() - start;
          }
          answered++;
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      statuses.error = (statuses.error ?? 0) + 1;
      answered++;
    });
    req.end(ev.body);
  };

  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * o.rate) / 1000) + 1);
      while (sent < due) send(sent++);
      if (sent >= total || o.isAborted?.()) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  const sendEnd = performance.now();
  const graceUntil = sendEnd + (o.graceS ?? 30) * 1000;
  while (answered < sent && performance.now() < graceUntil && !o.isAborted?.()) await new Promise((r) => setTimeout(r, 10));
  agent.destroy();
  return { sent, ok, failed: sent - ok, statuses, sentAt, latencyMs, elapsedS: (sendEnd - t0) / 1000, late };
}

/** p50/p99 and friends of a list of ms values. */
export function latencySummary(values: ArrayLike<number>): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  const v = Array.from(values).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const mean = v.length ? v.reduce((s, x) => s + x, 0) / v.length : NaN;
  return { n: v.length, p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99), max: v.length ? v[v.length - 1] : NaN, mean };
}
