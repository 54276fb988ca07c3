/**
 * Seeded pseudo-random numbers for the agency simulator, so a run with the same `--seed` picks
 * the same scenarios and faults. mulberry32: tiny, fast, good enough for simulation (not crypto).
 */

export interface Prng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[];
}

export function mulberry32(seed: number): Prng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    pick: (items) => {
      if (items.length === 0) throw new Error('prng.pick: empty list');
      return items[int(items.length)];
    },
    shuffle: (items) => {
      const out = items.slice();
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    },
  };
}

/**
 * Independent streams from one seed: scenario choice must not shift when a fault roll is added
 * or removed, so each concern draws from its own generator.
 */
export function deriveSeed(seed: number, stream: number): number {
  // Spread the stream index with a large odd constant (golden ratio) so nearby seeds diverge.
  return (seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0;
}
