/**
 * A circuit breaker per partner (design.md, "deliver … circuit breaker"): when an agency is down,
 * the hub stops calling it instead of spending every row's attempts on an outage, and lets one
 * probe through after a cool-down to find out whether it is back.
 *
 * closed ──(N consecutive retryable failures, or a failure rate over the window)──▶ open
 * open ──(cool-down over)──▶ half-open: one probe call; every other call is held back
 * half-open ──probe succeeds──▶ closed     half-open ──probe fails──▶ open (cool-down doubled, capped)
 *
 * A `Retry-After` on any answer holds the whole partner until then (the agency told us when to
 * come back, so no row calls it earlier), and then probes like a cool-down.
 *
 * State lives in memory, per worker process and partner. That is enough: the breaker only saves
 * calls; correctness (nothing lost, nothing twice) rests on the outbox and idempotency keys. With
 * several workers each finds out about an outage on its own (a few more failed calls), and each
 * sends its own probe.
 */
import type { HubContext } from '../context';

export interface CircuitBreakerSettings {
  /** false: never open (every row keeps to its own backoff). */
  enabled: boolean;
  /** Consecutive retryable failures (network, timeout, 408, 5xx) that open the circuit. */
  failureThreshold: number;
  /** Also open when at least this share of the calls in the window failed… */
  failureRate: number;
  /** …counted only once the window holds this many calls. */
  minimumCalls: number;
  windowMs: number;
  /** How long the circuit stays open before one probe is let through. */
  coolDownMs: number;
  /** Each failed probe doubles the cool-down, up to this. */
  maxCoolDownMs: number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export type Admission = { allowed: true; probe: boolean } | { allowed: false; retryAt: Date; state: CircuitState };

export type CallOutcome =
  /** The agency answered as the protocol says, success or a final refusal (a 4xx is not an outage). */
  | { kind: 'answered' }
  /** Network error, timeout, 408 or 5xx. */
  | { kind: 'failed'; retryAfterMs?: number }
  /** 429: not an outage, but nobody calls before Retry-After. */
  | { kind: 'throttled'; retryAfterMs?: number }
  /** The call was never made (the row stopped before it): frees a probe slot, changes nothing else. */
  | { kind: 'not_called' };

export interface CircuitTransition {
  partnerId: string;
  from: CircuitState;
  to: CircuitState;
  at: Date;
  why: string;
}

export class CircuitBreaker {
  private state: CircuitState = 'closed';
  private consecutive = 0;
  private window: { at: number; failed: boolean }[] = [];
  private openUntil = 0;
  private coolDown: number;
  private probeUntil = 0;
  private probing = false;
  readonly transitions: CircuitTransition[] = [];

  constructor(
    readonly partnerId: string,
    private readonly settings: CircuitBreakerSettings,
    private readonly onTransition: (t: CircuitTransition) => void = () => undefined,
  ) {
    this.coolDown = settings.coolDownMs;
  }

  /** The state as of `now` (an open circuit whose cool-down is over reads half-open). */
  stateAt(now: Date): CircuitState {
    if (this.state === 'open' && now.getTime() >= this.openUntil) return 'half_open';
    return this.state;
  }

  /** Would a call be held back right now? (No side effect: used to skip work before claiming it.) */
  blocks(now: Date): boolean {
    const t = now.getTime();
    if (this.state === 'open') return t < this.openUntil;
    if (this.state === 'half_open') return this.probing && t < this.probeUntil;
    return false;
  }

  /** When the next call may go, if one is held back now. */
  retryAt(now: Date): Date {
    if (this.state === 'open') return new Date(Math.max(this.openUntil, now.getTime()));
    if (this.state === 'half_open' && this.probing) return new Date(this.probeUntil);
    return now;
  }

  /** Ask before a call. A half-open circuit admits exactly one call (the probe) until it reports. */
  admit(now: Date): Admission {
    const t = now.getTime();
    if (!this.settings.enabled) return { allowed: true, probe: false };
    if (this.state === 'open') {
      if (t < this.openUntil) return { allowed: false, retryAt: new Date(this.openUntil), state: 'open' };
      this.move('half_open', now, 'cool-down over');
    }
    if (this.state === 'half_open') {
      // A probe whose outcome never came (its worker lost it) gives way after a cool-down.
      if (this.probing && t < this.probeUntil) return { allowed: false, retryAt: new Date(this.probeUntil), state: 'half_open' };
      this.probing = true;
      this.probeUntil = t + Math.max(this.coolDown, 1000);
      return { allowed: true, probe: true };
    }
    return { allowed: true, probe: false };
  }

  /** Report the outcome of an admitted call. */
  record(outcome: CallOutcome, now: Date, probe = false): void {
    if (!this.settings.enabled) return;
    const t = now.getTime();
    if (probe) this.probing = false;
    if (outcome.kind === 'not_called') return;
    if (outcome.kind === 'answered') {
      this.consecutive = 0;
      this.push(t, false);
      if (this.state !== 'closed' && (probe || this.state === 'half_open')) {
        this.coolDown = this.settings.coolDownMs;
        this.window = [];
        this.move('closed', now, probe ? 'probe succeeded' : 'call succeeded');
      }
      return;
    }
    const retryAfter = outcome.retryAfterMs ?? 0;
    if (outcome.kind === 'throttled') {
      if (retryAfter > 0) this.hold(t + retryAfter, now, `429 Retry-After ${Math.round(retryAfter)} ms`);
      else if (probe) this.hold(t + this.coolDown, now, 'probe throttled');
      return;
    }
    this.consecutive++;
    this.push(t, true);
    if (probe || this.state === 'half_open') {
      this.coolDown = Math.min(this.settings.maxCoolDownMs, this.coolDown * 2);
      this.hold(t + Math.max(this.coolDown, retryAfter), now, 'probe failed');
      return;
    }
    const failed = this.window.filter((w) => w.failed).length;
    const rateTripped = this.window.length >= this.settings.minimumCalls && failed / this.window.length >= this.settings.failureRate;
    if (this.consecutive >= this.settings.failureThreshold || rateTripped) {
      const why = this.consecutive >= this.settings.failureThreshold ? `${this.consecutive} consecutive failures` : `${failed}/${this.window.length} calls failed`;
      this.hold(t + Math.max(this.coolDown, retryAfter), now, why);
    } else if (retryAfter > 0) {
      // Below the threshold, but the agency said when to come back: nobody calls before.
      this.hold(t + retryAfter, now, `Retry-After ${Math.round(retryAfter)} ms`);
    }
  }

  snapshot(now: Date) {
    return {
      state: this.stateAt(now),
      consecutiveFailures: this.consecutive,
      openUntil: this.state === 'open' ? new Date(this.openUntil).toISOString() : null,
      coolDownMs: this.coolDown,
    };
  }

  private hold(until: number, now: Date, why: string) {
    this.openUntil = Math.max(until, this.state === 'open' ? this.openUntil : 0);
    this.probing = false;
    if (this.state !== 'open') this.move('open', now, why);
  }

  private push(t: number, failed: boolean) {
    this.window.push({ at: t, failed });
    const from = t - this.settings.windowMs;
    while (this.window.length && this.window[0].at < from) this.window.shift();
  }

  private move(to: CircuitState, now: Date, why: string) {
    const t: CircuitTransition = { partnerId: this.partnerId, from: this.state, to, at: now, why };
    this.state = to;
    this.transitions.push(t);
    if (this.transitions.length > 200) this.transitions.shift();
    this.onTransition(t);
  }
}

export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerSettings = {
  enabled: true,
  failureThreshold: 5,
  failureRate: 0.5,
  minimumCalls: 20,
  windowMs: 60_000,
  coolDownMs: 30_000,
  maxCoolDownMs: 300_000,
};

/** The breakers of one hub (one per partner), kept beside its context rather than in it. */
export class CircuitBreakers {
  private readonly byPartner = new Map<string, CircuitBreaker>();
  /** Told of every change of state (the runner arms a probe when one opens, drains the backlog when one closes). */
  onTransition: (t: CircuitTransition) => void = () => undefined;

  constructor(
    private readonly settings: CircuitBreakerSettings,
    private readonly log?: HubContext['logger'],
  ) {}

  get(partnerId: string): CircuitBreaker {
    let b = this.byPartner.get(partnerId);
    if (!b) {
      b = new CircuitBreaker(partnerId, this.settings, (t) => {
        const level = t.to === 'open' ? 'warn' : 'info';
        this.log?.[level](`circuit ${t.to === 'half_open' ? 'half-open' : t.to} for partner ${partnerId}`, { partner: partnerId, from: t.from, to: t.to, why: t.why });
        this.onTransition(t);
      });
      this.byPartner.set(partnerId, b);
    }
    return b;
  }

  /** Partners whose calls are held back now. */
  blockedPartners(now: Date): string[] {
    return [...this.byPartner.values()].filter((b) => b.blocks(now)).map((b) => b.partnerId);
  }

  snapshot(now: Date): Record<string, ReturnType<CircuitBreaker['snapshot']>> {
    return Object.fromEntries([...this.byPartner.entries()].map(([id, b]) => [id, b.snapshot(now)]));
  }
}

const registry = new WeakMap<object, CircuitBreakers>();

/** The breakers of the hub this context belongs to (created on first use). */
export function circuitBreakers(ctx: HubContext): CircuitBreakers {
  let b = registry.get(ctx);
  if (!b) {
    // Contexts built by hand (tests) may have no circuitBreaker block: the defaults apply.
    const settings: CircuitBreakerSettings = { ...DEFAULT_CIRCUIT_BREAKER, ...ctx.config.delivery?.circuitBreaker };
    b = new CircuitBreakers(settings, ctx.logger);
    registry.set(ctx, b);
  }
  return b;
}

/**
 * The runner asks the circuit before it claims a partner row (so a row that may not call is
 * never taken, and a half-open circuit's probe is decided before any row is claimed); the
 * admission travels with the claimed row to the one call the stage makes.
 */
const lent = new WeakMap<object, { allowed: true; probe: boolean }>();

export function lendAdmission(row: object, probe: boolean): void {
  lent.set(row, { allowed: true, probe });
}

/** The admission lent with this row, if any (taken once). */
export function takeAdmission(row: object): { allowed: true; probe: boolean } | undefined {
  const a = lent.get(row);
  lent.delete(row);
  return a;
}

/** Thrown by the delivery stage when the partner's circuit holds the call back: not an attempt. */
export class CircuitOpen extends Error {
  constructor(
    readonly partnerId: string,
    readonly retryAt: Date,
    state: CircuitState,
  ) {
    super(`circuit ${state === 'half_open' ? 'half-open (a probe is in flight)' : 'open'} for partner ${partnerId} until ${retryAt.toISOString()}; not called`);
    this.name = 'CircuitOpen';
  }
}
