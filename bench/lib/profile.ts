/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`, what `npm run bench -- --profile <dir>`
 * turns on for the hub processes) and says where the time went: self time per function and per
 * package/file, and inclusive time of the functions that matter most.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  window?: { from: number; to: number };
  totalMs: number;
  idleMs: number;
  topSelf: { name: string; where: string; ms: number; pct: number }[];
  byOwner: { owner: string; ms: number; pct: number }[];
  topInclusive: { name: string; where: string; ms: number; pct: number }[];
}

/** `node_modules/pg/lib/x.js` → `pg`; `/work/main/src/http/app.ts` → `src/http/app.ts`. */
function owner(url: string, root: string): string {
  if (!url) return '(native/V8)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (u.startsWith('node:') || !u.startsWith('/')) return `node:${u.replace(/^node:/, '').split('/')[0]}`;
  const rel = path.relative(root, u);
  // compiled output lives in a temp dir: keep the part from src/, connectors/ or sim/ on
  const m = /(?:^|\/)((?:src|connectors|sim|bench)\/.*)$/.exec(rel);
  return m ? m[1] : rel;
}

/**
 * `window`: only samples taken between `from` and `to` (epoch ms) count; the profile's own clock
 * is placed on the epoch by its end, which is the moment the process exited (`exitedAt`).
 */
export function summarizeProfile(file: string, root: string, top = 20, window?: { from: number; to: number; exitedAt: number }): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  if (prof.samples && prof.timeDeltas) {
    // timestamps in µs on the profile's clock; endTime ≈ exitedAt
    let t = prof.startTime;
    const toEpoch = (us: number) => (window ? window.exitedAt - (prof.endTime - us) / 1000 : 0);
    for (let i = 0; i < prof.samples.length; i++) {
      t += prof.timeDeltas[i] ?? 0;
      if (window) {
        const at = toEpoch(t);
        if (at < window.from || at > window.to) continue;
      }
      const dt = (prof.timeDeltas[i + 1] ?? prof.timeDeltas[i] ?? 0) / 1000;
      selfMs.set(prof.samples[i], (selfMs.get(prof.samples[i]) ?? 0) + dt);
    }
  } else {
    const total = (prof.endTime - prof.startTime) / 1000;
    const hits = prof.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    for (const n of prof.nodes) selfMs.set(n.id, ((n.hitCount ?? 0) / hits) * total);
  }
  const totalMs = [...selfMs.values()].reduce((s, x) => s + x, 0);
  const label = (n: ProfileNode) => n.callFrame.functionName || '(anonymous)';
  const where = (n: ProfileNode) => `${owner(n.callFrame.url, root)}:${n.callFrame.lineNumber + 1}`;
  const idleMs = prof.nodes.filter((n) => ['(idle)', '(program)'].includes(n.callFrame.functionName)).reduce((s, n) => s + (selfMs.get(n.id) ?? 0), 0);

  const self = new Map<string, { name: string; where: string; ms: number }>();
  const owners = new Map<string, number>();
  for (const n of prof.nodes) {
    const ms = selfMs.get(n.id) ?? 0;
    if (!ms) continue;
    const key = `${label(n)}@${where(n)}`;
    const e = self.get(key) ?? { name: label(n), where: where(n), ms: 0 };
    e.ms += ms;
    self.set(key, e);
    const o = ['(idle)', '(program)', '(garbage collector)'].includes(n.callFrame.functionName) ? n.callFrame.functionName : owner(n.callFrame.url, root);
    owners.set(o, (owners.get(o) ?? 0) + ms);
  }

  // Inclusive time: a node's self time plus its subtree's, counted once per function per stack.
  const inclusive = new Map<string, { name: string; where: string; ms: number }>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (const [id, ms] of selfMs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (!n.callFrame.url) continue;
      const key = `${label(n)}@${where(n)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const e = inclusive.get(key) ?? { name: label(n), where: where(n), ms: 0 };
      e.ms += ms;
      inclusive.set(key, e);
    }
  }
  const pct = (ms: number) => (totalMs ? (100 * ms) / totalMs : 0);
  return {
    file,
    window: window ? { from: window.from, to: window.to } : undefined,
    totalMs,
    idleMs,
    topSelf: [...self.values()].sort((a, b) => b.ms - a.ms).slice(0, top).map((e) => ({ ...e, pct: pct(e.ms) })),
    byOwner: [...owners.entries()].map(([o, ms]) => ({ owner: o, ms, pct: pct(ms) })).sort((a, b) => b.ms - a.ms).slice(0, top),
    topInclusive: [...inclusive.values()]
      .filter((e) => !e.where.startsWith('node:'))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((e) => ({ ...e, pct: pct(e.ms) })),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const line = (cols: string[]) => `  ${cols.join('  ')}`;
  const ms = (x: number) => `${Math.round(x)}`.padStart(7) + ' ms';
  const p = (x: number) => `${x.toFixed(1)}%`.padStart(6);
  const out = [
    `${path.basename(s.file)}: ${Math.round(s.totalMs)} ms sampled${s.window ? ` in the phase's measured window (${((s.window.to - s.window.from) / 1000).toFixed(1)} s)` : ' (whole process life)'}, ${Math.round(s.idleMs)} ms idle/program`,
    ' self time by package / file:',
    ...s.byOwner.map((o) => line([ms(o.ms), p(o.pct), o.owner])),
    ' self time by function:',
    ...s.topSelf.map((f) => line([ms(f.ms), p(f.pct), `${f.name}  ${f.where}`])),
    ' inclusive time by function (JS frames):',
    ...s.topInclusive.map((f) => line([ms(f.ms), p(f.pct), `${f.name}  ${f.where}`])),
  ];
  return out.join('\n');
}
