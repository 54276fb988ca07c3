/**
 * Child processes of the bench (hub roles, agency simulator, bare express) and their memory.
 * Each child writes to its own log file; RSS is read from /proc every 200 ms per process, so
 * the hub's figure is the hub's alone and not the load generator's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Cleanup } from './cleanup';

export type ChildKind = 'hub' | 'sim' | 'baseline';

export interface Child {
  /** e.g. `services/api`, `drain/worker-2`. */
  label: string;
  kind: ChildKind;
  pid: number;
  proc: ChildProcess;
  logFile: string;
  startedAt: number;
  /** Epoch ms at which it exited (0 while running). */
  exitedAt: number;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string;
}

export interface SpawnSpec {
  label: string;
  kind: ChildKind;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  logDir: string;
}

export function spawnChild(spec: SpawnSpec, cleanup: Cleanup): Child {
  const logFile = path.join(spec.logDir, `${spec.label.replace(/[^A-Za-z0-9_.-]+/g, '_')}.log`);
  const fd = fs.openSync(logFile, 'a');
  const proc = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  if (!proc.pid) throw new Error(`could not start ${spec.label}: ${spec.command} ${spec.args.join(' ')}`);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => {
      done = true;
      child.exitedAt = Date.now();
      resolve(code ?? signal ?? 'unknown');
    });
    proc.once('error', () => {
      done = true;
      resolve('spawn-error');
    });
  });
  const child: Child = {
    label: spec.label,
    kind: spec.kind,
    pid: proc.pid,
    proc,
    logFile,
    startedAt: Date.now(),
    exitedAt: 0,
    exited,
    hasExited: () => done,
    async stop(graceMs = 10_000) {
      if (done) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!done) proc.kill('SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
    tail(lines = 20) {
      try {
        return fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  const forget = cleanup.add(`stop ${spec.label}`, () => child.stop());
  void exited.then(() => forget());
  return child;
}

/** A free TCP port on loopback (the bench only ever listens and connects there). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Poll `url` until it answers 2xx; fails early, with the log tail, when the child dies. */
export async function waitHttpReady(child: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (child.hasExited()) throw new Error(`${child.label} exited (${await child.exited}) before it was ready:\n${child.tail()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${child.label} not ready at ${url} after ${timeoutMs} ms (${last}):\n${child.tail()}`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- CPU ----------------------------------------------------------------------------------------

const CLK_TCK = 100;

/** User + system CPU time a process has used so far, ms (/proc/<pid>/stat; null when gone). */
export function cpuMs(pid: number): number | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may hold spaces: fields start after the last ')'
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}

/** CPU ms of a child's node process(es). */
export function childCpuMs(child: Child): number {
  return nodePids(child.pid).reduce((s, pid) => s + (cpuMs(pid) ?? 0), 0);
}

// ---- memory -------------------------------------------------------------------------------------

function readStatusKb(pid: number): { rss: number; hwm: number } | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(text);
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(text);
    return rss ? { rss: Number(rss[1]), hwm: hwm ? Number(hwm[1]) : Number(rss[1]) } : null;
  } catch {
    return null;
  }
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone, or no /proc (not Linux)
  }
  return out;
}

/**
 * The node process(es) doing the work: the pid itself when it is node, else its node
 * descendants (a wrapper such as npx or the tsx CLI starts the real node as a child).
 */
export function nodePids(pid: number): number[] {
  let comm = '';
  try {
    comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return [];
  }
  if (comm === 'node' || comm.startsWith('node')) return [pid];
  return childPids(pid).flatMap(nodePids);
}

export interface MemoryPeak {
  label: string;
  kind: ChildKind;
  /** Largest VmRSS seen by the 200 ms sampler, MB. */
  rssMb: number;
  /** The kernel's own high-water mark (VmHWM) at the last sample, MB. */
  hwmMb: number;
}

/** Samples VmRSS of every tracked child every `everyMs`. */
export class MemorySampler {
  private readonly peaks = new Map<string, MemoryPeak>();
  private readonly live = new Map<string, Child>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly everyMs = 200) {}

  track(child: Child): void {
    this.live.set(child.label, child);
    this.peaks.set(child.label, { label: child.label, kind: child.kind, rssMb: 0, hwmMb: 0 });
    this.sample();
    if (!this.timer) {
      this.timer = setInterval(() => this.sample(), this.everyMs);
      this.timer.unref();
    }
  }

  sample(): void {
    for (const [label, child] of this.live) {
      if (child.hasExited()) {
        this.live.delete(label);
        continue;
      }
      const peak = this.peaks.get(label)!;
      for (const pid of nodePids(child.pid)) {
        const kb = readStatusKb(pid);
        if (!kb) continue;
        peak.rssMb = Math.max(peak.rssMb, kb.rss / 1024);
        peak.hwmMb = Math.max(peak.hwmMb, kb.hwm / 1024);
      }
    }
  }

  all(): MemoryPeak[] {
    return [...this.peaks.values()];
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
