/**
 * The per-partner circuit breaker as a state machine (src/delivery/circuit-breaker.ts), on a
 * hand-driven clock: when it opens (a failure rate, not a run of failures: a flaky partner is
 * degraded, not down), what it lets through, how its half-open probes close or reopen it, and what
 * a Retry-After or a refusal does to it. The end-to-end behaviour is in agency-outage.test.ts
 * (an outage) and kill-in-flight.test.ts (a partner failing 20 % of its calls never opens it).
 */
import { CircuitBreaker, DEFAULT_CIRCUIT_BREAKER, PROBE_LOST_AFTER_MS, type CircuitBreakerSettings } from '../../../src/delivery/circuit-breaker';
import { circuitBreakerSchema } from '../../../src/config/schema';

/** Small numbers for the state-machine tests; the default thresholds are tested as they ship. */
const settings: CircuitBreakerSettings = { ...DEFAULT_CIRCUIT_BREAKER, coolDownMs: 1000, maxCoolDownMs: 4000, minimumCalls: 10, failureRate: 0.5, windowMs: 60_000, halfOpenProbes: 3 };
const at = (ms: number) => new Date(1_700_000_000_000 + ms);

function failN(b: CircuitBreaker, n: number, t: number) {
  for (let i = 0; i < n; i++) {
    const a = b.admit(at(t));
    expect(a.allowed).toBe(true);
    b.record({ kind: 'failed' }, at(t));
  }
}

/** Open the circuit (10 failures of 10 calls) at time t. */
function open(b: CircuitBreaker, t = 0) {
  failN(b, 10, t);
  expect(b.stateAt(at(t))).toBe('open');
}

/** A seeded random source (mulberry32), so a failing run replays. */
function prng(seed: number) {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/**
 * `calls` calls `spacingMs` apart, each failing with probability `p` (a seeded random source):
 * the time of the first transition to open, or null.
 */
function flakyPartner(s: CircuitBreakerSettings, o: { calls: number; p: number; spacingMs: number; seed: number }): number | null {
  const b = new CircuitBreaker('p', s);
  const rnd = prng(o.seed);
  for (let i = 0; i < o.calls; i++) {
    const t = at(i * o.spacingMs);
    const a = b.admit(t);
    if (!a.allowed) return i;
    b.record(rnd.next() < o.p ? { kind: 'failed' } : { kind: 'answered' }, t, a.probe);
    if (b.stateAt(t) !== 'closed') return i;
  }
  return null;
}

describe('circuit breaker: degraded is not down (the shipped defaults)', () => {
  it('the defaults are the config schema defaults: rate-based, no run threshold, 3 probes', () => {
    expect(circuitBreakerSchema.parse({})).toEqual(DEFAULT_CIRCUIT_BREAKER);
    expect(DEFAULT_CIRCUIT_BREAKER).toMatchObject({ failureThreshold: 0, failureRate: 0.7, minimumCalls: 30, halfOpenProbes: 3 });
  });

  it('25 % failures over 100 calls never open it: every fourth call, or at random (500 seeds)', () => {
    const b = new CircuitBreaker('p', DEFAULT_CIRCUIT_BREAKER);
    for (let i = 0; i < 100; i++) {
      expect(b.admit(at(i * 100))).toEqual({ allowed: true, probe: false });
      b.record(i % 4 === 3 ? { kind: 'failed' } : { kind: 'answered' }, at(i * 100));
    }
    expect(b.transitions).toEqual([]);
    // At random, runs of failures included (at 25 %, five in a row come once per ~1,000 calls).
    const opened = Array.from({ length: 500 }, (_, seed) => flakyPartner(DEFAULT_CIRCUIT_BREAKER, { calls: 100, p: 0.25, spacingMs: 100, seed })).filter((x) => x !== null);
    expect(opened).toEqual([]);
  });

  it('a partner failing 25 % at random stays closed over 20,000 calls, even with the window at its minimum', () => {
    // 2 s apart: the 60 s window holds 30 calls, exactly minimumCalls — the noisiest the rate gets.
    expect(flakyPartner(DEFAULT_CIRCUIT_BREAKER, { calls: 20_000, p: 0.25, spacingMs: 2000, seed: 14 })).toBeNull();
    // The old default (5 consecutive failures, or 50 % of 20) opened on the same partner after about a thousand calls (6 to 3,370 over 20 seeds).
    const old = { ...DEFAULT_CIRCUIT_BREAKER, failureThreshold: 5, failureRate: 0.5, minimumCalls: 20 };
    expect(flakyPartner(old, { calls: 20_000, p: 0.25, spacingMs: 2000, seed: 14 })).not.toBeNull();
  });

  it('a run of failures among successes does not open it (no consecutive-failure rule by default)', () => {
    const b = new CircuitBreaker('p', DEFAULT_CIRCUIT_BREAKER);
    for (let i = 0; i < 40; i++) {
      b.admit(at(i));
      b.record({ kind: 'answered' }, at(i));
    }
    failN(b, 12, 40);
    expect(b.stateAt(at(41))).toBe('closed');
  });

  it('100 % failures open it on the minimumCalls-th call, not before', () => {
    const b = new CircuitBreaker('p', DEFAULT_CIRCUIT_BREAKER);
    failN(b, DEFAULT_CIRCUIT_BREAKER.minimumCalls - 1, 0);
    expect(b.stateAt(at(1))).toBe('closed');
    failN(b, 1, 1);
    expect(b.stateAt(at(1))).toBe('open');
    expect(b.transitions.map((t) => [t.to, t.why])).toEqual([['open', '30/30 calls failed']]);
    expect(b.admit(at(2)).allowed).toBe(false);
  });

  it('a partner that is down opens it within the window even after a busy, healthy minute', () => {
    const b = new CircuitBreaker('p', DEFAULT_CIRCUIT_BREAKER);
    // 10 calls a second, all fine, then every call fails.
    let t = 0;
    for (; t < 60_000; t += 100) {
      b.admit(at(t));
      b.record({ kind: 'answered' }, at(t));
    }
    const outage = t;
    for (; b.stateAt(at(t)) === 'closed' && t < outage + 120_000; t += 100) {
      b.admit(at(t));
      b.record({ kind: 'failed' }, at(t));
    }
    expect(b.stateAt(at(t))).toBe('open');
    // Once 70 % of the window's calls failed: after 42 s of a 60 s window here, never past 60 s.
    expect(t - outage).toBeLessThanOrEqual(60_000);
  });
});

describe('circuit breaker: the state machine', () => {
  it('opens on a failure rate over the window once enough calls were made', () => {
    const b = new CircuitBreaker('p', settings);
    // Failures alternate with successes; the 11th call makes 6 of 11.
    for (let i = 0; i < 10; i++) {
      b.admit(at(i));
      b.record(i % 2 === 0 ? { kind: 'failed' } : { kind: 'answered' }, at(i));
    }
    expect(b.stateAt(at(10))).toBe('closed');
    b.admit(at(10));
    b.record({ kind: 'failed' }, at(10));
    expect(b.stateAt(at(10))).toBe('open');
    expect(b.transitions[0].why).toMatch(/6\/11 calls failed/);
  });

  it('calls that left the window no longer count', () => {
    const b = new CircuitBreaker('p', { ...settings, windowMs: 1000 });
    failN(b, 9, 0);
    // A second later those nine are out of the window: nine more do not make ten.
    failN(b, 9, 1001);
    expect(b.stateAt(at(1001))).toBe('closed');
  });

  it('lets nothing through while open, until the cool-down is over', () => {
    const b = new CircuitBreaker('p', settings);
    open(b);
    expect(b.blocks(at(999))).toBe(true);
    expect(b.admit(at(500))).toEqual({ allowed: false, retryAt: at(1000), state: 'open' });
    expect(b.transitions.map((t) => t.to)).toEqual(['open']);
  });

  it('half-open admits exactly halfOpenProbes probes; everyone else waits for them', () => {
    for (const n of [1, 3, 5]) {
      const b = new CircuitBreaker('p', { ...settings, halfOpenProbes: n });
      open(b);
      expect(b.stateAt(at(1000))).toBe('half_open');
      expect(b.blocks(at(1000))).toBe(false);
      for (let i = 0; i < n; i++) expect(b.admit(at(1000 + i))).toEqual({ allowed: true, probe: true });
      expect(b.admit(at(1000 + n))).toMatchObject({ allowed: false, state: 'half_open' });
      expect(b.blocks(at(1500))).toBe(true);
    }
  });

  it('closes once every probe succeeded; until then the slots of the ones that did stay taken', () => {
    const b = new CircuitBreaker('p', settings);
    open(b);
    for (let i = 0; i < 3; i++) b.admit(at(1000));
    b.record({ kind: 'answered' }, at(1100), true);
    b.record({ kind: 'answered' }, at(1110), true);
    expect(b.stateAt(at(1110))).toBe('half_open');
    expect(b.admit(at(1120)).allowed).toBe(false);
    b.record({ kind: 'answered' }, at(1130), true);
    expect(b.stateAt(at(1130))).toBe('closed');
    expect(b.transitions.at(-1)).toMatchObject({ to: 'closed', why: '3 probes succeeded' });
    expect(b.admit(at(1131))).toEqual({ allowed: true, probe: false });
  });

  it('one failed probe reopens it with the cool-down doubled, up to the cap; the late siblings change nothing', () => {
    const b = new CircuitBreaker('p', settings);
    open(b);
    for (let i = 0; i < 3; i++) b.admit(at(1000));
    b.record({ kind: 'answered' }, at(1050), true);
    b.record({ kind: 'failed' }, at(1100), true);
    expect(b.stateAt(at(1100))).toBe('open');
    expect(b.retryAt(at(1100))).toEqual(at(3100)); // 2000
    // The third probe answers late: it neither closes the circuit nor doubles the cool-down again.
    expect(b.probeStillWanted(at(1150))).toBe(false);
    b.record({ kind: 'answered' }, at(1200), true);
    b.record({ kind: 'failed' }, at(1200), true);
    expect(b.stateAt(at(1200))).toBe('open');
    expect(b.retryAt(at(1200))).toEqual(at(3100));
    // Again: 4000, then capped at 4000.
    b.admit(at(3100));
    b.record({ kind: 'failed' }, at(3100), true);
    expect(b.retryAt(at(3100))).toEqual(at(7100));
    b.admit(at(7100));
    b.record({ kind: 'failed' }, at(7100), true);
    expect(b.retryAt(at(7100))).toEqual(at(11_100));
    for (let i = 0; i < 3; i++) expect(b.admit(at(11_100)).allowed).toBe(true);
    for (let i = 0; i < 3; i++) b.record({ kind: 'answered' }, at(11_200), true);
    expect(b.stateAt(at(11_200))).toBe('closed');
    expect(b.transitions.map((t) => t.to)).toEqual(['open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'closed']);
    // And the next outage starts again from the configured cool-down.
    open(b, 12_000);
    expect(b.retryAt(at(12_000))).toEqual(at(13_000));
  });

  it('a probe that never called (its row could not run) frees its slot for another', () => {
    const b = new CircuitBreaker('p', { ...settings, halfOpenProbes: 1 });
    open(b);
    expect(b.admit(at(1000))).toEqual({ allowed: true, probe: true });
    expect(b.admit(at(1001)).allowed).toBe(false);
    b.record({ kind: 'not_called' }, at(1001), true);
    expect(b.admit(at(1002))).toEqual({ allowed: true, probe: true });
  });

  it('probes whose outcome never comes give way only after the longest a call may take', () => {
    const b = new CircuitBreaker('p', settings);
    open(b);
    for (let i = 0; i < 3; i++) b.admit(at(1000));
    // A slow probe is not lost: its slot stays taken well past the cool-down.
    expect(b.blocks(at(1000 + 60_000))).toBe(true);
    expect(b.retryAt(at(1500))).toEqual(at(1000 + PROBE_LOST_AFTER_MS));
    expect(b.blocks(at(1000 + PROBE_LOST_AFTER_MS))).toBe(false);
    expect(b.admit(at(1000 + PROBE_LOST_AFTER_MS))).toEqual({ allowed: true, probe: true });
  });

  it('half-open is decided by its probes: a late outcome of a call sent before it opened changes nothing', () => {
    const b = new CircuitBreaker('p', settings);
    open(b);
    b.admit(at(1000));
    // Calls admitted before the circuit opened end late, while the probe is out.
    b.record({ kind: 'failed' }, at(1010));
    b.record({ kind: 'answered' }, at(1020));
    b.record({ kind: 'answered' }, at(1030));
    b.record({ kind: 'answered' }, at(1040));
    expect(b.stateAt(at(1040))).toBe('half_open');
    expect(b.transitions.map((t) => t.to)).toEqual(['open', 'half_open']);
    // …but a Retry-After on one is still honoured.
    b.record({ kind: 'failed', retryAfterMs: 3000 }, at(1050));
    expect(b.stateAt(at(1050))).toBe('open');
    expect(b.retryAt(at(1050))).toEqual(at(4050));
  });

  it('failureThreshold, when a config sets it, still opens on a run of failures', () => {
    const b = new CircuitBreaker('p', { ...settings, failureThreshold: 3, minimumCalls: 1000 });
    failN(b, 2, 0);
    b.record({ kind: 'answered' }, at(1));
    failN(b, 2, 2);
    expect(b.stateAt(at(3))).toBe('closed');
    failN(b, 1, 3);
    expect(b.stateAt(at(3))).toBe('open');
    expect(b.transitions[0].why).toBe('3 consecutive failures');
  });

  it('a Retry-After holds the partner until then, below the rate, and longer than the cool-down', () => {
    const b = new CircuitBreaker('p', settings);
    b.admit(at(0));
    b.record({ kind: 'failed', retryAfterMs: 2500 }, at(0));
    expect(b.blocks(at(2499))).toBe(true);
    expect(b.blocks(at(2500))).toBe(false);
    const c = new CircuitBreaker('q', settings);
    failN(c, 9, 0);
    c.admit(at(0));
    c.record({ kind: 'failed', retryAfterMs: 5000 }, at(0));
    expect(c.retryAt(at(0))).toEqual(at(5000));
    // A late failure of a call already under way still extends the hold to its own Retry-After.
    c.record({ kind: 'failed', retryAfterMs: 5000 }, at(100));
    expect(c.retryAt(at(100))).toEqual(at(5100));
  });

  it('a 429 pauses the partner for its Retry-After without counting as an outage', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 8, 0);
    b.admit(at(1));
    b.record({ kind: 'throttled', retryAfterMs: 2000 }, at(1));
    expect(b.blocks(at(1500))).toBe(true);
    expect(b.admit(at(2001))).toEqual({ allowed: true, probe: true });
    for (let i = 0; i < 3; i++) {
      if (i > 0) b.admit(at(2001));
      b.record({ kind: 'answered' }, at(2002), true);
    }
    expect(b.stateAt(at(2002))).toBe('closed');
    // Closing forgot the window: nine more failures do not make the ten it takes.
    failN(b, 9, 2003);
    expect(b.stateAt(at(2003))).toBe('closed');
  });

  it('a refusal (a final 4xx) is an answer: it never opens the circuit', () => {
    const b = new CircuitBreaker('p', settings);
    for (let i = 0; i < 20; i++) {
      b.admit(at(i));
      b.record({ kind: 'answered' }, at(i));
    }
    expect(b.stateAt(at(20))).toBe('closed');
  });

  it('does nothing when disabled', () => {
    const b = new CircuitBreaker('p', { ...settings, enabled: false });
    failN(b, 50, 0);
    expect(b.stateAt(at(1))).toBe('closed');
    expect(b.admit(at(1)).allowed).toBe(true);
  });
});
