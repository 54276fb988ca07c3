/**
 * The bench harness runs end to end so it cannot rot (issue 7, "Tests"): `bench/run.ts --smoke`
 * starts every phase for a second or two with tiny numbers and must end with the JSON line of
 * every key. Timing is not asserted here — benchmarks are not tests. Without PostgreSQL or Redis
 * the services phases are skipped on a developer's machine and the suite FAILS under CI=true.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { postgresAvailable, redisAvailable } from '../support/services';

const ROOT = path.resolve(__dirname, '..', '..');
const KEYS = [
  'baseline_rps', 'ingest_rps_embedded', 'ingest_rps_services', 'ingest_ratio_services', 'ack_p50_ms', 'ack_p99_ms', 'e2e_p50_ms', 'e2e_p99_ms',
  'e2e_p50_ms_embedded', 'e2e_p99_ms_embedded', 'drain_eps', 'statements_per_event', 'commits_per_event', 'rss_mb_peak', 'rss_mb_peak_embedded',
];
const SERVICE_KEYS = ['ingest_rps_services', 'ingest_ratio_services', 'ack_p50_ms', 'ack_p99_ms', 'e2e_p50_ms', 'e2e_p99_ms', 'drain_eps', 'statements_per_event', 'commits_per_event'];
const RPS_KEYS = ['baseline_rps', 'ingest_rps_embedded', 'ingest_rps_services'];
/** Positive whenever their phase ran: every event costs statements and commits, and takes time. */
const POSITIVE_KEYS = [...RPS_KEYS, 'e2e_p50_ms_embedded', 'e2e_p99_ms_embedded', 'commits_per_event', 'rss_mb_peak', 'rss_mb_peak_embedded'];

/**
 * `npx tsx bench/run.ts …`, spelled `node --import tsx bench/run.ts …`: the same TypeScript
 * loader without the npx and tsx-CLI wrapper processes, so the timeout's SIGTERM reaches the bench
 * itself (the tsx CLI SIGKILLs a child that does not acknowledge a relayed signal within 30 ms,
 * which on a busy machine would leave the bench no time to stop what it started).
 */
function runBench(args: string[], timeoutMs: number): Promise<{ result: string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'bench/run.ts', ...args],
      { cwd: ROOT, timeout: timeoutMs, killSignal: 'SIGTERM', maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string; killed?: boolean }) | null;
        const result = !e ? 'exit 0' : e.killed ? `killed after ${timeoutMs} ms` : `exit ${e.code ?? e.signal}`;
        resolve({ result, stdout, stderr });
      },
    );
  });
}

describe('npm run bench -- --smoke', () => {
  let services = false;

  beforeAll(async () => {
    // Throws under CI=true when either is unreachable; warns and returns false elsewhere.
    services = (await postgresAvailable()) && (await redisAvailable());
  });

  it('runs every phase briefly and ends with one JSON line holding every figure', async () => {
    const args = ['--smoke', ...(services ? [] : ['--only', 'baseline,embedded,e2e-embedded'])];
    // A bound against a hang, not a timing: seven phases each start fresh processes from source,
    // which on a 2-core machine at a load average of 17-19 (other suites) took 4 min 18 s in all.
    const { result, stdout, stderr } = await runBench(args, 300_000);
    if (result !== 'exit 0') throw new Error(`bench: ${result}:\n${stderr.split('\n').slice(-40).join('\n')}`);

    const last = stdout.trimEnd().split('\n').pop() ?? '';
    const figures = JSON.parse(last) as Record<string, unknown>;
    expect(Object.keys(figures).sort()).toEqual([...KEYS].sort());
    for (const key of KEYS) {
      if (!services && SERVICE_KEYS.includes(key)) {
        expect(figures[key]).toBeNull();
        continue;
      }
      // Needs pg_stat_statements loaded by the server: without it null, and the run says why.
      if (key === 'statements_per_event' && figures[key] === null) {
        expect(stderr).toMatch(/statements_per_event not measured: \S/);
        expect(stdout).toMatch(/\| `statements_per_event` \| — \| <= 5 \(not measured: /);
        continue;
      }
      expect({ key, type: typeof figures[key] }).toEqual({ key, type: 'number' });
      expect(Number.isFinite(figures[key])).toBe(true);
      if (POSITIVE_KEYS.includes(key)) expect(figures[key] as number).toBeGreaterThan(0);
    }
    // The table is printed too, and a smoke run leaves BENCHMARKS.md alone.
    expect(stdout).toContain('| figure | value | target |');
    expect(stderr).not.toContain('wrote BENCHMARKS.md');
  }, 330_000);
});
