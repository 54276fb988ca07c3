/**
 * The debtor behaviours the simulator plays out on a case, the weighted mix they are drawn from
 * (`--scenario-mix`), and the `#scenario=<name>` marker that pins one for a given case.
 */
import type { Prng } from './prng';

/**
 * - paid: the agency collects every claim in full, one per step.
 * - arrangement: a 3-installment plan, each installment a step, then paid via arrangement.
 * - partial: half of each claim collected; the rest written off, or the case just stays open.
 * - disputed: the debtor disputes; the claims close with `disputed_upheld`.
 * - uncollectible: untraceable, insolvent or written off.
 * - manual: stops at `in_collection` and waits for control calls (tests, demos). Never in the default mix.
 */
export const SCENARIOS = ['paid', 'arrangement', 'partial', 'disputed', 'uncollectible', 'manual'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export type ScenarioMix = Partial<Record<Scenario, number>>;

export const DEFAULT_SCENARIO_MIX = 'paid:40,arrangement:20,partial:15,disputed:10,uncollectible:15';

export function isScenario(s: string): s is Scenario {
  return (SCENARIOS as readonly string[]).includes(s);
}

/** `paid:40,arrangement:20` → `{ paid: 40, arrangement: 20 }`; throws naming the bad part. */
export function parseScenarioMix(text: string): ScenarioMix {
  const mix: ScenarioMix = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z_]+)\s*:\s*(\d+(?:\.\d+)?)$/.exec(part);
    if (!m) throw new Error(`scenario mix: "${part}" is not <scenario>:<weight>`);
    const [, name, weight] = m;
    if (!isScenario(name)) throw new Error(`scenario mix: unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`);
    if (mix[name] !== undefined) throw new Error(`scenario mix: "${name}" given twice`);
    mix[name] = Number(weight);
  }
  const total = Object.values(mix).reduce((a, b) => a + (b ?? 0), 0);
  if (total <= 0) throw new Error('scenario mix: the weights must add up to more than 0');
  return mix;
}

/** Weighted draw; always consumes exactly one number so the stream stays aligned across cases. */
export function pickScenario(mix: ScenarioMix, prng: Prng): Scenario {
  const entries = SCENARIOS.map((s) => [s, mix[s] ?? 0] as const).filter(([, w]) => w > 0);
  const total = entries.reduce((a, [, w]) => a + w, 0);
  let roll = prng.next() * total;
  for (const [s, w] of entries) {
    if (roll < w) return s;
    roll -= w;
  }
  return entries[entries.length - 1][0];
}

/** The scenario pinned by a `#scenario=paid` marker in any of the given strings, if a known one. */
export function scenarioMarker(...texts: (string | undefined)[]): Scenario | undefined {
  for (const text of texts) {
    const m = text ? /#scenario=([a-z_]+)/.exec(text) : null;
    if (m && isScenario(m[1])) return m[1];
  }
  return undefined;
}
