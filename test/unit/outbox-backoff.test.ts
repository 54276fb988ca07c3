/** Retry delays for the outbox (design.md habit 7): exponential, capped, jittered, Retry-After honoured. */
import { backoffMs } from '../../src/outbox/outbox';

const BASE = 1000;
const MAX = 60_000;
const fixed = (x: number) => () => x;

describe('backoffMs', () => {
  it('doubles with each attempt (the same random draw)', () => {
    const delays = [1, 2, 3, 4, 5].map((a) => backoffMs(a, BASE, MAX, undefined, fixed(1)));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000]);
  });

  it('grows monotonically for any fixed random draw', () => {
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const delays = Array.from({ length: 12 }, (_, i) => backoffMs(i + 1, BASE, MAX, undefined, fixed(r)));
      for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]);
    }
  });

  it('treats attempt 0 like attempt 1 (the base delay)', () => {
    expect(backoffMs(0, BASE, MAX, undefined, fixed(1))).toBe(BASE);
  });

  it('is capped at maxMs however many attempts have failed', () => {
    expect(backoffMs(7, BASE, MAX, undefined, fixed(1))).toBe(MAX);
    expect(backoffMs(50, BASE, MAX, undefined, fixed(1))).toBe(MAX);
    expect(backoffMs(5000, BASE, MAX, undefined, fixed(1))).toBe(MAX);
  });

  it('jitters within [half, whole] of the exponential delay: half fixed, half random', () => {
    expect(backoffMs(3, BASE, MAX, undefined, fixed(0))).toBe(2000);
    expect(backoffMs(3, BASE, MAX, undefined, fixed(0.5))).toBe(3000);
    expect(backoffMs(3, BASE, MAX, undefined, fixed(0.999999))).toBeLessThanOrEqual(4000);
    expect(backoffMs(3, BASE, MAX, undefined, fixed(0.999999))).toBeGreaterThan(3999);
    expect(backoffMs(50, BASE, MAX, undefined, fixed(0))).toBe(MAX / 2);
  });

  it('stays within the jitter range with the real random source', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffMs(4, BASE, MAX);
      expect(d).toBeGreaterThanOrEqual(4000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });

  it('Retry-After wins when it asks for longer, even beyond the cap', () => {
    expect(backoffMs(1, BASE, MAX, 30_000, fixed(1))).toBe(30_000);
    expect(backoffMs(20, BASE, MAX, 120_000, fixed(1))).toBe(120_000);
  });

  it('a shorter Retry-After does not shorten the backoff', () => {
    expect(backoffMs(5, BASE, MAX, 100, fixed(0))).toBe(8000);
    expect(backoffMs(5, BASE, MAX, 0, fixed(0))).toBe(8000);
  });
});
