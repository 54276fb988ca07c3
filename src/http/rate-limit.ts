/**
 * Rate limits on the public endpoints (issue 6, guarantee 9): token buckets per source address
 * (every `/v1/…` request, before its body is read), per merchant for the merchant API (after the
 * token named the merchant), and — verify first, then charge (issue 13 item 2) — per merchant for
 * webhooks and per partner for agency pushes only once the signature has been verified, so forged
 * requests never spend a genuine sender's budget. Unsigned webhooks (Mollie classic) have their own
 * lower per-merchant budget; requests that fail verification are charged to a small bucket of their
 * source address, and an address that has emptied it gets 429 before its next body is read.
 * A refused request is answered `429` with `Retry-After` in whole seconds and is never
 * stored — the PSP or agency sends it again later, as it does for any non-2xx.
 *
 * Why our own buckets and not rate-limiter-flexible: its memory limiter counts fixed windows (twice
 * the rate can pass around a window edge) and answers through a promise per request; these are
 * true token buckets with fractional rates, synchronous on the ingress hot path, and bounded in
 * memory when an attacker cycles keys (tested in rate-limits.test.ts). Its Redis limiter would put
 * Redis on the ingress path, which must stay up without Redis (below).
 *
 * The buckets live in this process's memory. With several `api` processes behind a load balancer
 * each has its own budget, so the whole hub admits up to N × the configured rate. That is
 * acceptable because these limits are a flood guard — they keep one noisy tenant or address from
 * starving the database and the queue of one process — not a quota anyone is billed on; the
 * configured rate is what one process can afford, and N processes can afford N times it. A shared
 * budget would need a Redis round trip on every request, on the ingress path that must stay up
 * when Redis is not (design.md: the database is the system of record, the queue only dispatches).
 */
import type { Request, RequestHandler } from 'express';
import { HttpError } from './errors';

export interface BucketOptions {
  /** Tokens added per second; 0 turns the limit off. Fractions are allowed (0.1 = one per 10 s). */
  ratePerSecond: number;
  /** Bucket size: how many requests may arrive at once after a quiet spell. */
  burst: number;
  /** Most keys kept; beyond it idle (full) buckets go first, then the least recently used. */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A set of token buckets, one per key. `now` is in milliseconds (injectable for tests). */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;

  constructor(
    readonly opts: BucketOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  get enabled(): boolean {
    return this.opts.ratePerSecond > 0;
  }

  get size(): number {
    return this.buckets.size;
  }

  /**
   * The seconds `key` would have to wait for one token (0: it has one), without taking it. Used to
   * refuse an address that keeps failing verification before its next body is read.
   */
  peek(key: string): number {
    if (!this.enabled) return 0;
    const { ratePerSecond, burst } = this.opts;
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = Math.min(burst, b.tokens + ((this.now() - b.at) / 1000) * ratePerSecond);
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / ratePerSecond));
  }

  /** Take one token for `key`: 0 when the request may go on, else the seconds to wait (≥ 1). */
  take(key: string): number {
    if (!this.enabled) return 0;
    const { ratePerSecond, burst } = this.opts;
    const now = this.now();
    const b = this.buckets.get(key);
    let tokens = burst;
    if (b) {
      tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * ratePerSecond);
      // Re-inserted below, so the map's order is least recently used first.
      this.buckets.delete(key);
    } else if (this.buckets.size >= this.maxKeys) {
      this.evict(now);
    }
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      return 0;
    }
    this.buckets.set(key, { tokens, at: now });
    return Math.max(1, Math.ceil((1 - tokens) / ratePerSecond));
  }

  /**
   * Many distinct keys (an attacker cycling addresses or merchant ids): drop buckets that have
   * refilled — forgetting them changes nothing — and if that is not enough, the least recently used.
   */
  private evict(now: number): void {
    const { ratePerSecond, burst } = this.opts;
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * ratePerSecond >= burst) this.buckets.delete(k);
    }
    const over = this.buckets.size - Math.floor(this.maxKeys * 0.9);
    if (over <= 0) return;
    let n = 0;
    for (const k of this.buckets.keys()) {
      if (n++ >= over) break;
      this.buckets.delete(k);
    }
  }
}

/**
 * The address a request came from: the peer of the TCP connection, or with `hub.http.trustProxy`
 * set, the client the trusted proxies name in X-Forwarded-For (express's req.ip). IPv4-mapped IPv6 is folded to IPv4; IPv6 is keyed by its /64, because one host
 * commonly holds a whole /64 and could otherwise take a fresh budget per address.
 */
export function sourceAddress(req: Request): string {
  // req.ip is the socket's peer unless `hub.http.trustProxy` names the proxies in front (app.ts).
  const raw = (req as Partial<Request>).ip ?? req.socket?.remoteAddress ?? 'unknown';
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
  if (v4) return v4[1];
  if (!raw.includes(':')) return raw;
  return `${ipv6Prefix64(raw)}::/64`;
}

function ipv6Prefix64(addr: string): string {
  const bare = addr.split('%')[0];
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':');
}

export interface LimitRule {
  buckets: TokenBuckets;
  /** The bucket key of a request, or undefined to let it through unmetered (unknown merchant: 404 later). */
  key(req: Request): string | undefined;
  /** Said in the 429 message: what was limited and for whom. */
  describe(req: Request): string;
  /** Counted once per refusal (metrics). */
  onLimited?(req: Request): void;
}

/** The 429 of a rule whose bucket is empty. */
export function rateLimited(rule: LimitRule, req: Request, wait: number): HttpError {
  const { ratePerSecond, burst } = rule.buckets.opts;
  return new HttpError(
    429,
    'rate_limited',
    `too many requests: ${rule.describe(req)} is limited to ${ratePerSecond} per second (bursts of ${burst}); retry after ${wait} s`,
    { 'Retry-After': String(wait) },
  );
}

/**
 * Take one token of `rule` for this request, or throw its 429. For budgets charged inside a route
 * (a webhook's merchant budget is charged only once its signature has been verified).
 */
export function chargeOrThrow(rule: LimitRule, req: Request): void {
  if (!rule.buckets.enabled) return;
  const key = rule.key(req);
  if (key === undefined) return;
  const wait = rule.buckets.take(key);
  if (wait === 0) return;
  rule.onLimited?.(req);
  throw rateLimited(rule, req, wait);
}

/** Express middleware for one rule; a refusal goes through the one error mapper (errors.ts). */
export function limitBy(rule: LimitRule): RequestHandler {
  return (req, _res, next) => {
    try {
      chargeOrThrow(rule, req);
    } catch (err) {
      return next(err);
    }
    next();
  };
}

export interface RateLimitSettings {
  webhooksPerSecondPerMerchant: number;
  webhooksBurst: number;
  apiPerSecondPerMerchant: number;
  apiBurst: number;
  partnerPushPerSecond: number;
  partnerPushBurst: number;
  perAddressPerSecond: number;
  perAddressBurst: number;
  unsignedWebhooksPerSecondPerMerchant: number;
  unsignedWebhooksBurst: number;
  failedVerificationsPerSecondPerAddress: number;
  failedVerificationsBurst: number;
}

export interface RateLimiters {
  perAddress: TokenBuckets;
  webhooksPerMerchant: TokenBuckets;
  /** Verified but unsigned webhooks (Mollie classic): anyone can send one, so not the signed budget. */
  unsignedWebhooksPerMerchant: TokenBuckets;
  apiPerMerchant: TokenBuckets;
  partnerPush: TokenBuckets;
  /** Webhooks and pushes that failed verification, per source address (never a merchant's or partner's budget). */
  failedVerifications: TokenBuckets;
}

export function createRateLimiters(s: RateLimitSettings, now?: () => number): RateLimiters {
  return {
    perAddress: new TokenBuckets({ ratePerSecond: s.perAddressPerSecond, burst: s.perAddressBurst }, now),
    webhooksPerMerchant: new TokenBuckets({ ratePerSecond: s.webhooksPerSecondPerMerchant, burst: s.webhooksBurst }, now),
    apiPerMerchant: new TokenBuckets({ ratePerSecond: s.apiPerSecondPerMerchant, burst: s.apiBurst }, now),
    partnerPush: new TokenBuckets({ ratePerSecond: s.partnerPushPerSecond, burst: s.partnerPushBurst }, now),
    unsignedWebhooksPerMerchant: new TokenBuckets({ ratePerSecond: s.unsignedWebhooksPerSecondPerMerchant, burst: s.unsignedWebhooksBurst }, now),
    failedVerifications: new TokenBuckets({ ratePerSecond: s.failedVerificationsPerSecondPerAddress, burst: s.failedVerificationsBurst, maxKeys: 10_000 }, now),
  };
}
