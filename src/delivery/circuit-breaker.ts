/**
 * A circuit breaker per partner (design.md, "deliver … circuit breaker"): when an agency is down,
 * the hub stops calling it instead of spending every row's attempts on an outage, and lets a few
 * probes through after a cool-down to find out whether it is back.
 *
 * closed ──(a failure rate over the window, once it holds a minimum of calls)──▶ open
 * open ──(cool-down over)──▶ half-open: `halfOpenProbes` calls go through; every other call is held back
 * half-open ──all probes succeed──▶ closed     half-open ──a probe fails──▶ open (cool-down doubled, capped)
 *
 * Half-open is decided by its own probes: the late outcome of a call sent before the circuit
 * opened tells about the agency before the cool-down, so it changes nothing (but its Retry-After,
 * if any, is still honoured).
 *
 * Down, not degraded: a partner that fails a quarter of its calls at random is degraded — each row
 * gets through on its own backoff, and holding the whole lane for a cool-down would only delay the
 * three calls in four that work. So the circuit opens on a *rate* (`failureRate`, default 70 %) over
 * `windowMs` once the window holds `minimumCalls` (default 30), not on a run of failures: under
 * random failures at rate p, k failures in a row come every ~1/p^k calls (k = 5 at 25 %: once per
 * 1,000 calls), so the old default of 5 consecutive failures opened the circuit of a merely flaky
 * agency again and again. 70 % of 30 calls from a partner failing 25 % is a binomial tail of
 * 3·10⁻⁷; a partner that is really down fails every call and opens the circuit at most `windowMs`
 * after the outage began (sooner under load). `failureThreshold` (consecutive failures) is still
 * accepted for configs that set it, but is off (0) by default.
 *
 * A `Retry-After` on any answer holds the whole partner until then (the agency told us when to
 * come back, so no row calls it earlier), and then probes like a cool-down.
 *
 * State lives in memory, per worker process and partner. That is enough: the breaker only saves
 * calls; correctness (nothing lost, nothing twice) rests on the outbox and idempotency keys. With
 * several workers each finds out about an outage on its own (a few more failed calls), and each
 * sends its own probes.
 */
import type { HubContext } from '../context';

export interface CircuitBreakerSettings {
  /** false: never open (every row keeps to its own backoff). */
  enabled: boolean;
  /**
   * Consecutive retryable failures (network, timeout, 408, 5xx) that open the circuit; 0 = off,
   * the default. Off because a run of failures is what random failures produce too (see above);
   * set it only for an agency that fails all or nothing.
   */
  failureThreshold: number;
  /** Open when at least this share of the calls in the window failed… */
  failureRate: number;
  /** …counted only once the window holds this many calls. */
  minimumCalls: number;
  windowMs: number;
  /** How long the circuit stays open before probes are let through. */
  coolDownMs: number;
  /** Each failed probe doubles the cool-down, up to this. */
  maxCoolDownMs: number;
  /** Calls let through when half-open; all of them must succeed to close it, one failure reopens it. */
  halfOpenProbes: number;
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

/**
 * A probe's outcome always comes back in this process (every path records it, or `not_called`;
 * a process that dies takes its breaker with it), so its slot is freed without one only as a
 * safety net: after the longest a partner call may take (`partners[].timeoutMs` is at most 120 s).
 * Shorter, a slow probe's slot would be handed to another probe while it is still out.
 */
export const PROBE_LOST_AFTER_MS = 120_000;

export class CircuitBreaker {
  private state: CircuitState = 'closed';
  private consecutive = 0;
  private window: { at: number; failed: boolean }[] = [];
  private openUntil = 0;
  private coolDown: number;
  /** Half-open: probes admitted whose outcome has not come yet, and the ones that succeeded. */
  private probesOut = 0;
  private probesOk = 0;
  /** Probes out past this time are taken as lost and give way (see PROBE_LOST_AFTER_MS). */
  private probeUntil = 0;
  readonly transitions: CircuitTransition[] = [];

  constructor(
    readonly partnerId: string,
    private readonly settings: CircuitBreakerSettings,
    private readonly onTransition: (t: CircuitTransition) => void = () => undefined,
  ) {
    this.coolDown = settings.coolDownMs;
  }

  private get probeSlots(): number {
    return Math.max(1, this.settings.halfOpenProbes ?? 1);
  }

  /** Half-open with every probe slot taken (by probes still out, or by ones that succeeded). */
  private probesFull(t: number): boolean {
    if (this.probesOut > 0 && t >= this.probeUntil) this.probesOut = 0; // lost probes give way
    return this.probesOut + this.probesOk >= this.probeSlots;
  }

  /** The state as of `now` (an open circuit whose cool-down is over reads half-open). */
  stateAt(now: Date): CircuitState {
    if (this.state === 'open' && now.getTime() >= this.openUntil) return 'half_open';
    return this.state;
  }

  /** Would a call be held back right now? (No side effect on the state: used to skip work before claiming it.) */
  blocks(now: Date): boolean {
    const t = now.getTime();
    if (this.state === 'open') return t < this.openUntil;
    if (this.state === 'half_open') return this.probesFull(t);
    return false;
  }

  /** When the next call may go, if one is held back now. */
  retryAt(now: Date): Date {
    if (this.state === 'open') return new Date(Math.max(this.openUntil, now.getTime()));
    if (this.state === 'half_open' && this.probesFull(now.getTime())) return new Date(Math.max(this.probeUntil, now.getTime()));
    return now;
  }

  /** Ask before a call. A half-open circuit admits `halfOpenProbes` calls (the probes) until they report. */
  admit(now: Date): Admission {
    const t = now.getTime();
    if (!this.settings.enabled) return { allowed: true, probe: false };
    if (this.state === 'open') {
      if (t < this.openUntil) return { allowed: false, retryAt: new Date(this.openUntil), state: 'open' };
      this.move('half_open', now, 'cool-down over');
    }
    if (this.state === 'half_open') {
      if (this.probesFull(t)) return { allowed: false, retryAt: new Date(this.probeUntil), state: 'half_open' };
      this.probesOut++;
      this.probeUntil = t + Math.max(this.coolDown, PROBE_LOST_AFTER_MS);
      return { allowed: true, probe: true };
    }
    return { allowed: true, probe: false };
  }

  /**
   * Is a probe admitted earlier still wanted? Not once a sibling probe failed and reopened the
   * circuit (or the circuit closed meanwhile, when it is an ordinary call): the stage asks right
   * before its call, so a down agency gets no more probes than it needs to show it is down.
   */
  probeStillWanted(now: Date): boolean {
    return !this.settings.enabled || this.stateAt(now) !== 'open';
  }

  /** Report the outcome of an admitted call. */
  record(outcome: CallOutcome, now: Date, probe = false): void {
    if (!this.settings.enabled) return;
    const t = now.getTime();
    if (probe && this.probesOut > 0) this.probesOut--;
    if (outcome.kind === 'not_called') return;
    if (outcome.kind === 'answered') {
      this.consecutive = 0;
      this.push(t, false);
      if (this.state === 'half_open' && probe) {
        this.probesOk++;
        if (this.probesOk >= this.probeSlots) {
          this.coolDown = this.settings.coolDownMs;
          this.window = [];
          this.move('closed', now, `${this.probesOk} probe${this.probesOk > 1 ? 's' : ''} succeeded`);
        }
      }
      // Open, or not a probe: a late answer (a call made before it opened, or a sibling of the
      // probe that failed) decides nothing.
      return;
    }
    const retryAfter = outcome.retryAfterMs ?? 0;
    if (outcome.kind === 'throttled') {
      if (retryAfter > 0) this.hold(t + retryAfter, now, `429 Retry-After ${Math.round(retryAfter)} ms`);
      else if (probe && this.state === 'half_open') this.hold(t + this.coolDown, now, 'probe throttled');
      return;
    }
    this.consecutive++;
    this.push(t, true);
    if (this.state === 'half_open' && probe) {
      this.coolDown = Math.min(this.settings.maxCoolDownMs, this.coolDown * 2);
      this.hold(t + Math.max(this.coolDown, retryAfter), now, 'probe failed');
      return;
    }
    if (this.state !== 'closed') {
      // Open, or half-open and not a probe (a late failure of a call made before it opened, or
      // of a sibling probe): nothing new to decide, but a Retry-After still holds the partner.
      if (retryAfter > 0) this.hold(t + retryAfter, now, `Retry-After ${Math.round(retryAfter)} ms`);
      return;
    }
    const failed = this.window.filter((w) => w.failed).length;
    const rateTripped = this.window.length >= this.settings.minimumCalls && failed / this.window.length >= this.settings.failureRate;
    const runTripped = this.settings.failureThreshold > 0 && this.consecutive >= this.settings.failureThreshold;
    if (rateTripped || runTripped) {
      const why = rateTripped ? `${failed}/${this.window.length} calls failed` : `${this.consecutive} consecutive failures`;
      this.hold(t + Math.max(this.coolDown, retryAfter), now, why);
    } else if (retryAfter > 0) {
      // Not tripped, but the agency said when to come back: nobody calls before.
      this.hold(t + retryAfter, now, `Retry-After ${Math.round(retryAfter)} ms`);
    }
  }

  snapshot(now: Date) {
    return {
      state: this.stateAt(now),
      consecutiveFailures: this.consecutive,
      windowCalls: this.window.length,
      windowFailures: this.window.filter((w) => w.failed).length,
      openUntil: this.state === 'open' ? new Date(this.openUntil).toISOString() : null,
      coolDownMs: this.coolDown,
    };
  }

  private hold(until: number, now: Date, why: string) {
    this.openUntil = Math.max(until, this.state === 'open' ? this.openUntil : 0);
    this.probesOut = 0;
    this.probesOk = 0;
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
    if (to === 'half_open') {
      this.probesOut = 0;
      this.probesOk = 0;
    }
    this.transitions.push(t);
    if (this.transitions.length > 200) this.transitions.shift();
    this.onTransition(t);
  }
}

export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerSettings = {
  enabled: true,
  failureThreshold: 0,
  failureRate: 0.7,
  minimumCalls: 30,
  windowMs: 60_000,
  coolDownMs: 30_000,
  maxCoolDownMs: 300_000,
  halfOpenProbes: 3,
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
    super(`circuit ${state === 'half_open' ? 'half-open (its probes are in flight)' : 'open'} for partner ${partnerId} until ${retryAt.toISOString()}; not called`);
    this.name = 'CircuitOpen';
  }
}
