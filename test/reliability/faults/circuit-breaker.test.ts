/**
 * The per-partner circuit breaker as a state machine (src/delivery/circuit-breaker.ts), on a
 * hand-driven clock: when it opens, what it lets through, how it probes and closes, and what
 * a Retry-After or a refusal does to it. The end-to-end behaviour is in agency-outage.test.ts.
 */
import { CircuitBreaker, DEFAULT_CIRCUIT_BREAKER, type CircuitBreakerSettings } from '../../../src/delivery/circuit-breaker';

const settings: CircuitBreakerSettings = { ...DEFAULT_CIRCUIT_BREAKER, failureThreshold: 3, coolDownMs: 1000, maxCoolDownMs: 4000, minimumCalls: 10, failureRate: 0.5, windowMs: 60_000 };
const at = (ms: number) => new Date(1_700_000_000_000 + ms);

function failN(b: CircuitBreaker, n: number, t: number) {
  for (let i = 0; i < n; i++) {
    const a = b.admit(at(t));
    expect(a.allowed).toBe(true);
    b.record({ kind: 'failed' }, at(t));
  }
}

describe('circuit breaker', () => {
  it('stays closed below the threshold, and a success resets the count', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 2, 0);
    b.record({ kind: 'answered' }, at(1));
    failN(b, 2, 2);
    expect(b.stateAt(at(3))).toBe('closed');
    expect(b.admit(at(3)).allowed).toBe(true);
  });

  it('opens on N consecutive failures and lets nothing through until the cool-down is over', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 3, 0);
    expect(b.stateAt(at(1))).toBe('open');
    expect(b.blocks(at(999))).toBe(true);
    const denied = b.admit(at(500));
    expect(denied).toEqual({ allowed: false, retryAt: at(1000), state: 'open' });
    expect(b.transitions.map((t) => t.to)).toEqual(['open']);
  });

  it('half-opens after the cool-down: exactly one probe, everyone else waits for it', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 3, 0);
    expect(b.stateAt(at(1000))).toBe('half_open');
    expect(b.admit(at(1000))).toEqual({ allowed: true, probe: true });
    expect(b.admit(at(1001)).allowed).toBe(false);
    expect(b.admit(at(1500)).allowed).toBe(false);
    expect(b.blocks(at(1500))).toBe(true);
  });

  it('a successful probe closes it; a failed one reopens it with the cool-down doubled, up to the cap', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 3, 0);
    b.admit(at(1000));
    b.record({ kind: 'failed' }, at(1100), true);
    expect(b.stateAt(at(1100))).toBe('open');
    expect(b.retryAt(at(1100))).toEqual(at(3100)); // 2000
    b.admit(at(3100));
    b.record({ kind: 'failed' }, at(3100), true);
    expect(b.retryAt(at(3100))).toEqual(at(7100)); // 4000
    b.admit(at(7100));
    b.record({ kind: 'failed' }, at(7100), true);
    expect(b.retryAt(at(7100))).toEqual(at(11_100)); // capped at 4000
    b.admit(at(11_100));
    b.record({ kind: 'answered' }, at(11_200), true);
    expect(b.stateAt(at(11_200))).toBe('closed');
    expect(b.admit(at(11_201))).toEqual({ allowed: true, probe: false });
    expect(b.transitions.map((t) => t.to)).toEqual(['open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'closed']);
    // And the next outage starts again from the configured cool-down.
    failN(b, 3, 12_000);
    expect(b.retryAt(at(12_000))).toEqual(at(13_000));
  });

  it('a probe that never called (its row could not run) frees the slot for another', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 3, 0);
    expect(b.admit(at(1000))).toEqual({ allowed: true, probe: true });
    b.record({ kind: 'not_called' }, at(1001), true);
    expect(b.admit(at(1002))).toEqual({ allowed: true, probe: true });
  });

  it('opens on a failure rate over the window too, once enough calls were made', () => {
    const b = new CircuitBreaker('p', settings);
    // Failures alternate with successes, so never three in a row; the 11th call makes 6 of 11.
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

  it('a Retry-After holds the partner until then, even below the threshold, and longer than the cool-down', () => {
    const b = new CircuitBreaker('p', settings);
    b.admit(at(0));
    b.record({ kind: 'failed', retryAfterMs: 2500 }, at(0));
    expect(b.blocks(at(2499))).toBe(true);
    expect(b.blocks(at(2500))).toBe(false);
    const c = new CircuitBreaker('q', settings);
    failN(c, 2, 0);
    c.admit(at(0));
    c.record({ kind: 'failed', retryAfterMs: 5000 }, at(0));
    expect(c.retryAt(at(0))).toEqual(at(5000));
  });

  it('a 429 pauses the partner for its Retry-After without counting as an outage', () => {
    const b = new CircuitBreaker('p', settings);
    failN(b, 2, 0);
    b.admit(at(1));
    b.record({ kind: 'throttled', retryAfterMs: 2000 }, at(1));
    expect(b.blocks(at(1500))).toBe(true);
    expect(b.admit(at(2001))).toEqual({ allowed: true, probe: true });
    b.record({ kind: 'answered' }, at(2002), true);
    expect(b.stateAt(at(2002))).toBe('closed');
    // The two failures before were reset by the success: one more does not open it.
    failN(b, 1, 2003);
    expect(b.stateAt(at(2003))).toBe('closed');
  });

  it('a refusal (a final 4xx) is an answer: it closes a half-open circuit and never opens one', () => {
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
