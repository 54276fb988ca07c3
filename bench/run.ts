/**
 * `npm run bench`: the hub measured against the bare framework in one run (issue 7).
 *
 * Starts everything as child processes on free loopback ports — a bare express app (the
 * ceiling), the hub in embedded mode (PGlite + in-process queue) and in services mode
 * (PostgreSQL + Redis, `api` and `worker` roles), the agency simulator — drives them with
 * autocannon and a paced open-loop sender, prints a table, writes it into BENCHMARKS.md, and
 * ends with one line of JSON. `--help` lists the flags.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Cleanup } from './lib/cleanup';
import { MemorySampler, childCpuMs, cpuMs, freePort, sleep, spawnChild, waitHttpReady, type Child, type MemoryPeak } from './lib/processes';
import { OWNER, claimRedis, createDatabase, deadOwner, dropStaleDatabases, postgresReachable, redisReachable, type BenchDatabase, type BenchRedis } from './lib/services';
import { MERCHANT_ID, ROOT, childEnv, prepareRuntime, simCounts, startStack, storedWebhooks, type HubStack, type Runtime, type StackContext } from './lib/stack';
import { issueMerchantToken } from '../src/http/merchant-auth';
import { cannon, latencySummary, makePool, paced, type LoadResult, type SignedEvent } from './lib/load';
import { fmt, round } from './lib/stats';
import { formatProfile, summarizeProfile } from './lib/profile';
import { startSqlCount, type SqlCounts } from './lib/sql-counts';
import { openEmbeddedDb, type Queryable } from './lib/embedded-db';

// ---- options --------------------------------------------------------------------------------

const PHASES = ['baseline', 'embedded', 'e2e-embedded', 'services', 'ack', 'e2e', 'drain'] as const;
type Phase = (typeof PHASES)[number];
const SERVICE_PHASES: Phase[] = ['services', 'ack', 'e2e', 'drain'];

const HELP = `Usage: npm run bench -- [flags]

Measures, in one run, each phase in its own fresh processes (and, in services mode, its own
fresh PostgreSQL database), and prints a table and one final line of JSON:

  baseline      bare express 5 app (express.raw, answers 200): the ceiling        -> baseline_rps
  embedded      hub role all, PGlite in a temp dir + in-process queue, max rate   -> ingest_rps_embedded
  e2e-embedded  the e2e phase below against that embedded hub, at its own rate    -> e2e_p50_ms_embedded, e2e_p99_ms_embedded
  services      hub role api + 1 worker, PostgreSQL + Redis, max rate             -> ingest_rps_services, ingest_ratio_services
  ack           services mode at a fixed rate: autocannon overallRate             -> ack_p50_ms, ack_p99_ms
                (then the same rate open-loop in fresh processes, shown in the table)
  e2e           services mode, paced sender: webhook sent -> case accepted by agency
                                                                                  -> e2e_p50_ms, e2e_p99_ms
  drain         backlog ingested by role api alone, then N workers started        -> drain_eps
                and, while they drain it, SQL statements per event                -> statements_per_event
                (pg_stat_statements; null when the server has not loaded it)
                and commits per event (pg_stat_database)                          -> commits_per_event
  (all)         peak VmRSS of any one hub process, sampled every 200 ms           -> rss_mb_peak
                (and of the embedded-mode hub processes alone)                    -> rss_mb_peak_embedded

Flags (defaults in brackets; the issue's full run: --duration 30 --e2e-seconds 60 --backlog 20000):
  --duration <s>          measured seconds of each throughput / fixed-rate run [10]
  --warmup <s>            warm-up before each measured run, seconds (fixed-rate phases: at most 200 / 100 events) [2; 0 with --smoke]
  --connections <n>       autocannon connections for the max-rate runs and the backlog [50]
  --pipelining <n>        autocannon pipelining for the max-rate runs [1]
  --ack-rate <rps>        the fixed request rate of the ack phase [500]
  --ack-connections <n>   autocannon connections of the ack phase (overallRate is split over them) [10]
  --e2e-rate <ev/s>       events per second of the e2e phase (services mode) [200]
  --e2e-embedded-rate <ev/s>
                          events per second of the e2e-embedded phase (role all, PGlite) [50; 10 with --smoke]
  --e2e-seconds <s>       how long each e2e phase sends [10]
  --backlog <n>           events in the drain phase's backlog [2000]
  --drain-workers <n>     worker processes started on the backlog [2]
  --pool-rps <rps>        signed bodies per second of a max-rate run [3 x the warm-up's rate, at most baseline x 1.1 or 8000]
  --only <phase,...>      run only these phases (${PHASES.join(', ')})
  --runtime <r>           auto (build with tsc, fall back to tsx when the build fails) | node | tsx [auto; tsx with --smoke]
  --profile <dir>         run the hub processes with --cpu-prof, keep the profiles in <dir>, print a summary
  --smoke                 every phase for ~1-2 s with tiny numbers (CI); does not write BENCHMARKS.md
  --write / --no-write    write the results into BENCHMARKS.md [on for a full run without --only]
  --keep                  keep the temp dir (configs, child logs) and print where it is
  --help                  this text

Needs PostgreSQL (BENCH_PG_ADMIN_URL / TEST_PG_ADMIN_URL, default postgres://postgres@127.0.0.1:5432/postgres)
and Redis (BENCH_REDIS_URL / TEST_REDIS_URL, default redis://127.0.0.1:6379) for the services phases.
statements_per_event needs pg_stat_statements in that server's shared_preload_libraries and a
superuser (the bench creates the extension in its own database and resets only that database's entries).
Progress goes to stderr; the table and the JSON line to stdout.`;

interface Options {
  duration: number;
  warmup: number;
  connections: number;
  pipelining: number;
  ackRate: number;
  ackConnections: number;
  e2eRate: number;
  e2eEmbeddedRate: number;
  e2eSeconds: number;
  backlog: number;
  drainWorkers: number;
  poolRps?: number;
  only: Phase[];
  runtime: 'auto' | 'node' | 'tsx';
  profile?: string;
  smoke: boolean;
  write: boolean;
  keep: boolean;
  argv: string[];
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      pipelining: { type: 'string' },
      'ack-rate': { type: 'string' },
      'ack-connections': { type: 'string' },
      'e2e-rate': { type: 'string' },
      'e2e-embedded-rate': { type: 'string' },
      'e2e-seconds': { type: 'string' },
      backlog: { type: 'string' },
      'drain-workers': { type: 'string' },
      'pool-rps': { type: 'string' },
      only: { type: 'string' },
      runtime: { type: 'string' },
      profile: { type: 'string' },
      smoke: { type: 'boolean' },
      write: { type: 'boolean' },
      'no-write': { type: 'boolean' },
      keep: { type: 'boolean' },
    },
  });
  if (values.help) return null;
  const num = (name: string, def: number, o: { min?: number; max?: number; int?: boolean } = {}): number => {
    const raw = (values as Record<string, unknown>)[name];
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || (o.int && !Number.isInteger(n)) || n < (o.min ?? 0) || n > (o.max ?? Infinity)) {
      throw new Error(`--${name}: "${String(raw)}" is not ${o.int ? 'an integer' : 'a number'} in ${o.min ?? 0}..${o.max ?? '∞'}`);
    }
    return n;
  };
  const smoke = Boolean(values.smoke);
  // Signatures are valid for 300 s and each pool is signed right before its phase.
  const maxS = 240;
  const only = values.only
    ? values.only.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
        if (!(PHASES as readonly string[]).includes(s)) throw new Error(`--only: unknown phase "${s}" (phases: ${PHASES.join(', ')})`);
        return s as Phase;
      })
    : [...PHASES];
  // The smoke run skips the ~15 s build: it checks the harness, not the figures.
  const runtime = (values.runtime ?? (smoke ? 'tsx' : 'auto')) as Options['runtime'];
  if (!['auto', 'node', 'tsx'].includes(runtime)) throw new Error(`--runtime: "${runtime}" is not auto, node or tsx`);
  const opts: Options = {
    duration: num('duration', smoke ? 1.5 : 10, { min: 0.5, max: maxS }),
    warmup: num('warmup', smoke ? 0 : 2, { min: 0, max: 60 }),
    connections: num('connections', smoke ? 8 : 50, { min: 1, max: 1000, int: true }),
    pipelining: num('pipelining', 1, { min: 1, max: 100, int: true }),
    ackRate: num('ack-rate', smoke ? 100 : 500, { min: 1, max: 20_000 }),
    ackConnections: num('ack-connections', smoke ? 4 : 10, { min: 1, max: 1000, int: true }),
    e2eRate: num('e2e-rate', smoke ? 20 : 200, { min: 1, max: 5000 }),
    e2eEmbeddedRate: num('e2e-embedded-rate', smoke ? 10 : 50, { min: 1, max: 5000 }),
    e2eSeconds: num('e2e-seconds', smoke ? 2 : 10, { min: 0.5, max: maxS }),
    backlog: num('backlog', smoke ? 60 : 2000, { min: 1, max: 200_000, int: true }),
    drainWorkers: num('drain-workers', 2, { min: 1, max: 16, int: true }),
    poolRps: values['pool-rps'] !== undefined ? num('pool-rps', 0, { min: 1, max: 100_000 }) : smoke ? 1500 : undefined,
    only,
    runtime,
    profile: values.profile ? path.resolve(values.profile) : undefined,
    smoke,
    write: values['no-write'] ? false : values.write ? true : !smoke && !values.only,
    keep: Boolean(values.keep),
    argv,
  };
  return opts;
}

// ---- results --------------------------------------------------------------------------------

interface Results {
  baseline?: { run: LoadResult; cpu: CpuUse };
  embedded?: IngestResult;
  services?: IngestResult;
  ack?: {
    rate: number;
    cannon: LoadResult;
    cannonLat: ReturnType<typeof latencySummary>;
    paced: { sent: number; ok: number; lat: ReturnType<typeof latencySummary>; late: number; elapsedS: number };
  };
  e2e?: E2eResult;
  e2eEmbedded?: E2eResult;
  drain?: {
    backlog: number;
    workers: number;
    ingest: LoadResult;
    epsDb: number;
    epsWall: number;
    firstDoneAfterSpawnS: number;
    seconds: number;
    outbox: Record<string, number>;
    completed: boolean;
    /** From worker spawn (start-up included) until settled. */
    cpu: CpuUse;
    tables: TableStat[];
    /** Statements and commits from worker spawn until the hub processes had stopped. */
    sql: SqlCounts;
    /** Seconds from the end of the backlog's ingest to the start of the SQL counts (0: not waited for, a smoke run). */
    statsAfterS: number;
  };
}

interface E2eResult {
  mode: 'embedded' | 'services';
  rate: number;
  sent: number;
  ok: number;
  atAgency: number;
  missing: number;
  sendLate: number;
  ackLat: ReturnType<typeof latencySummary>;
  /** send → simulator case createdAt (the JSON figure). */
  lat: ReturnType<typeof latencySummary>;
  /** Hub-side, from its database: received_at → processed_at → case created_at → submitted_at (empty when it could not be read). */
  stages: { name: string; lat: ReturnType<typeof latencySummary> }[];
  /** From the first send until every case is at the agency: the whole pipeline's cost. */
  cpu: CpuUse;
  /** PostgreSQL's table counters (services mode only). */
  tables?: TableStat[];
  /** Events stored in the phase, warm-up included (what the table counters cover). */
  events: number;
  /** Why the hub's database view is missing, if it is. */
  stagesNote?: string;
}

interface IngestResult {
  warm: LoadResult;
  run: LoadResult;
  stored: number;
  expected: number;
  /** CPU of the measured run; per acknowledged webhook in the table (the worker's share is work on earlier ones too). */
  cpu: CpuUse;
}

// ---- the run --------------------------------------------------------------------------------

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function main(): Promise<number> {
  let opts: Options | null;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nrun with --help to see every flag\n`);
    return 2;
  }
  if (!opts) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const o = opts;
  const cleanup = new Cleanup();
  const runId = randomBytes(3).toString('hex');
  sweepStaleTempDirs();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `hub-bench-${OWNER}_`));
  cleanup.add('remove temp dir', () => {
    if (o.keep) log(`kept ${workDir}`);
    else fs.rmSync(workDir, { recursive: true, force: true });
  });
  const stoppers = new Set<() => void>();
  let aborted = false;
  let exitCode = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (aborted) return;
    aborted = true;
    exitCode = signal === 'SIGINT' ? 130 : 143;
    log(`${signal}: stopping everything`);
    for (const s of stoppers) s();
    // Children stop and databases go now; the run itself unwinds (every loop checks `aborted`)
    // and exits once everything is undone. A last resort if something hangs:
    void cleanup.runAll(log);
    setTimeout(() => {
      log('still not stopped after 60 s; exiting');
      void cleanup.runAll(log).finally(() => process.exit(exitCode));
    }, 60_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const memory = new MemorySampler(200);
  const results: Results = {};
  const started = new Date();
  const loadAtStart = os.loadavg();
  if (loadAtStart[0] > os.cpus().length) log(`warning: load average ${loadAtStart[0].toFixed(1)} on ${os.cpus().length} cores: other work will skew the figures`);
  let runtime: Runtime | undefined;
  let ctx: StackContext | undefined;
  try {
    const wantsServices = o.only.some((p) => SERVICE_PHASES.includes(p));
    if (wantsServices) {
      const [pg, redis] = await Promise.all([postgresReachable(), redisReachable()]);
      if (pg || redis) {
        throw new Error(
          `the services phases need PostgreSQL and Redis: ${[pg && `PostgreSQL: ${pg}`, redis && `Redis: ${redis}`].filter(Boolean).join('; ')} ` +
            `(run --only baseline,embedded,e2e-embedded without them)`,
        );
      }
    }
    if (wantsServices) await dropStaleDatabases(log);
    runtime = await prepareRuntime(o.runtime, workDir, log);
    log(`runtime: ${runtime.note}`);
    const logDir = path.join(workDir, 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    if (o.profile) fs.mkdirSync(o.profile, { recursive: true });
    ctx = { runtime, cleanup, memory, logDir, profileDir: o.profile, profiles: [], windows: new Map(), log };
    const redis = wantsServices ? await claimRedis(cleanup, runId) : undefined;
    if (redis) log(`redis: logical database ${redis.db}`);
    const guard = { isAborted: () => aborted, stoppers };

    for (const phase of o.only.length ? PHASES.filter((p) => o.only.includes(p)) : []) {
      if (aborted) break;
      log(`--- ${phase}`);
      const t = Date.now();
      switch (phase) {
        case 'baseline':
          results.baseline = await runBaseline(ctx, o, guard);
          break;
        case 'embedded':
          results.embedded = await runIngest(ctx, o, guard, 'embedded', results.baseline?.run.rps);
          break;
        case 'services':
          results.services = await runIngest(ctx, o, guard, 'services', results.baseline?.run.rps, redis);
          break;
        case 'ack':
          results.ack = await runAck(ctx, o, guard, redis!);
          break;
        case 'e2e-embedded':
          results.e2eEmbedded = await runE2e(ctx, o, guard, 'embedded');
          break;
        case 'e2e':
          results.e2e = await runE2e(ctx, o, guard, 'services', redis!);
          break;
        case 'drain':
          results.drain = await runDrain(ctx, o, guard, redis!);
          break;
      }
      log(`${phase} done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
  } catch (err) {
    if (!aborted) log(`failed: ${(err as Error).stack ?? (err as Error).message}`);
    exitCode ||= 1;
  }
  await cleanup.runAll(log);
  memory.stop();
  if (aborted || exitCode) return exitCode || 130;

  const peaks = memory.all();
  const summary = keyFigures(results, peaks);
  const report = renderReport(o, results, peaks, summary, runtime!, started, loadAtStart);
  process.stdout.write(`${report}\n`);
  if (o.write) {
    writeBenchmarksMd(report);
    log('wrote BENCHMARKS.md');
  }
  if (o.profile && ctx) printProfiles(ctx);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}

/** Temp dirs of bench runs on this host that were killed before they could remove them. */
function sweepStaleTempDirs(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (name.startsWith('hub-bench-') && deadOwner(name, 'hub-bench-')) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

interface Guard {
  isAborted(): boolean;
  stoppers: Set<() => void>;
}

/** Run autocannon with the interrupt wired in. */
async function guarded(guard: Guard, opts: Parameters<typeof cannon>[0]): Promise<LoadResult> {
  let stop: (() => void) | undefined;
  try {
    return await cannon({
      ...opts,
      onInstance: (s) => {
        stop = s;
        guard.stoppers.add(s);
      },
    });
  } finally {
    if (stop) guard.stoppers.delete(stop);
  }
}

function requireOk(what: string, r: LoadResult | { ok: number; failed: number; statuses: Record<string, number> }) {
  if (r.ok === 0) throw new Error(`${what}: no 2xx answer at all (${JSON.stringify(r.statuses)})`);
  if (r.failed) log(`${what}: ${r.failed} request(s) without a 2xx answer: ${JSON.stringify(r.statuses)}`);
}

// ---- CPU accounting -------------------------------------------------------------------------

/**
 * CPU time used during a window by each hub process and by the PostgreSQL backends serving the
 * phase's database: load-independent cost per event, which stays meaningful on a busy machine.
 */
interface CpuUse {
  wallS: number;
  byProcess: { label: string; ms: number }[];
  /** null in embedded mode (PGlite runs inside the hub process). */
  postgresMs: number | null;
}

/** Backends on the phase's database but the bench's reader (`clients`: connections only, no autovacuum). */
async function pgBackends(db: BenchDatabase, clients = false): Promise<number[]> {
  const rows = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()${clients ? ` AND backend_type = 'client backend'` : ''}`,
  );
  return rows.map((r) => Number(r.pid));
}

async function startCpu(children: () => Child[], db?: BenchDatabase, kind: Child['kind'] = 'hub'): Promise<() => Promise<CpuUse>> {
  const t0 = Date.now();
  const hub0 = new Map(children().filter((c) => c.kind === kind).map((c) => [c.label, childCpuMs(c)]));
  const pg0 = new Map<number, number>();
  if (db) for (const pid of await pgBackends(db)) pg0.set(pid, cpuMs(pid) ?? 0);
  return async () => {
    const byProcess = children()
      .filter((c) => c.kind === kind && !c.hasExited())
      .map((c) => ({ label: c.label, ms: childCpuMs(c) - (hub0.get(c.label) ?? 0) }));
    let postgresMs: number | null = null;
    if (db) {
      postgresMs = 0;
      for (const pid of await pgBackends(db)) {
        const now = cpuMs(pid);
        if (now !== null) postgresMs += now - (pg0.get(pid) ?? 0);
      }
    }
    return { wallS: (Date.now() - t0) / 1000, byProcess, postgresMs };
  };
}

/** Where PostgreSQL's time likely goes: tables read by sequential scans, and writes, per event. */
interface TableStat {
  table: string;
  seqScans: number;
  seqRows: number;
  idxScans: number;
  inserts: number;
  updates: number;
  rows: number;
}

async function pgTableStats(db: BenchDatabase): Promise<TableStat[]> {
  // Backends report their counters at most once a second.
  await sleep(1200);
  const [x] = await db.query<{ commits: string; rollbacks: string }>(`SELECT xact_commit AS commits, xact_rollback AS rollbacks FROM pg_stat_database WHERE datname = current_database()`);
  const rows = await db.query<{ relname: string; seq_scan: string; seq_tup_read: string; idx_scan: string | null; n_tup_ins: string; n_tup_upd: string; n_live_tup: string }>(
    `SELECT relname, seq_scan, seq_tup_read, idx_scan, n_tup_ins, n_tup_upd, n_live_tup FROM pg_stat_user_tables ORDER BY seq_tup_read DESC, relname`,
  );
  const tables = rows.map((r) => ({
    table: r.relname, seqScans: Number(r.seq_scan), seqRows: Number(r.seq_tup_read), idxScans: Number(r.idx_scan ?? 0),
    inserts: Number(r.n_tup_ins), updates: Number(r.n_tup_upd), rows: Number(r.n_live_tup),
  }));
  // Transactions ride along as a pseudo-table (commits in `inserts`), the bench's own reads included.
  return [...tables, { table: '(transactions)', seqScans: 0, seqRows: 0, idxScans: 0, inserts: Number(x?.commits ?? 0), updates: Number(x?.rollbacks ?? 0), rows: 0 }];
}

function describeTables(stats: TableStat[] | undefined, events: number): string {
  if (!stats?.length || !events) return '';
  const per = (x: number) => (x / events >= 10 ? Math.round(x / events).toLocaleString('en-US') : (x / events).toFixed(1));
  const xact = stats.find((t) => t.table === '(transactions)');
  stats = stats.filter((t) => t !== xact);
  const scans = stats.filter((t) => t.seqRows > 0).slice(0, 4).map((t) => `${t.table} ${per(t.seqScans)} scans reading ${per(t.seqRows)} rows`);
  const writes = [...stats].sort((a, b) => b.inserts + b.updates - (a.inserts + a.updates)).slice(0, 6).map((t) => `${t.table} ${per(t.inserts)} ins + ${per(t.updates)} upd`);
  const total = stats.reduce((n, t) => n + t.inserts + t.updates, 0);
  return `per event — ${xact ? `${per(xact.inserts)} commits, ` : ''}${per(total)} rows written (${writes.join(', ')}); sequential scans: ${scans.join(', ') || 'none'}`;
}

/** The drain's statements and commits per event, for the details table's "measured" column. */
function describeSqlValue(sql: SqlCounts, events: number): string {
  const per = (x: number) => (x / events).toLocaleString('en-US', { maximumSignificantDigits: 3 });
  return `${sql.statements === null ? '— statements' : `${per(sql.statements)} statements`}, ${per(sql.commits)} commits`;
}

function describeSql(sql: SqlCounts, events: number, statsAfterS: number): string {
  const per = (x: number) => (x / events).toLocaleString('en-US', { maximumSignificantDigits: 3 });
  const window = 'from worker spawn until the hub processes had exited';
  const parts: string[] = [];
  if (sql.statements === null) parts.push(`statements not measured: ${sql.why}`);
  else {
    parts.push(
      `${sql.statements.toLocaleString('en-US')} statements ${window} (pg_stat_statements calls in the phase's database, the bench's own queries left out; ` +
        (sql.trackUtility === false
          ? '**BEGIN/COMMIT not counted: pg_stat_statements.track_utility is off**)'
          : `BEGIN ${per(sql.begins)}, COMMIT ${per(sql.commitStatements)}${sql.rollbackStatements ? `, ROLLBACK ${per(sql.rollbackStatements)}` : ''} per event included)`),
    );
    if (sql.evicted > 0) parts.push(`**${sql.evicted} pg_stat_statements entries were evicted: a lower bound** (raise pg_stat_statements.max)`);
    if (sql.top.length) parts.push(`most called: ${sql.top.map((t) => `\`${t.query.replace(/\|/g, '\\|').replace(/`/g, "'")}\` ${per(t.calls)}`).join(', ')}`);
  }
  parts.push(
    `${sql.commits.toLocaleString('en-US')} commits and ${sql.rollbacks.toLocaleString('en-US')} rollbacks in the same window (pg_stat_database, the bench's own transactions left out` +
      `${statsAfterS ? `; opened ${statsAfterS.toFixed(1)} s after the backlog's ingest ended, so that its counters were in` : '; not waited for the ingest’s counters (smoke run): approximate'}` +
      `${sql.commitsExact ? '' : '; the bench could not force out its own counters (PostgreSQL < 15): approximate'})`,
  );
  return parts.join('; ');
}

function describeCpu(cpu: CpuUse | undefined, events: number): string {
  if (!cpu || !events) return '';
  const per = (ms: number) => `${(ms / events).toFixed(2)} ms`;
  const parts = cpu.byProcess.map((p) => `${p.label.split('/').pop()} ${(p.ms / 1000).toFixed(1)} s (${per(p.ms)}/event)`);
  if (cpu.postgresMs !== null) parts.push(`PostgreSQL backends ${(cpu.postgresMs / 1000).toFixed(1)} s (${per(cpu.postgresMs)}/event)`);
  const total = cpu.byProcess.reduce((s, p) => s + p.ms, 0) + (cpu.postgresMs ?? 0);
  return `CPU in ${cpu.wallS.toFixed(1)} s: ${parts.join(', ')}; together ${per(total)}/event${cpu.postgresMs !== null ? ' (Redis not counted)' : ''}`;
}

// ---- phases ---------------------------------------------------------------------------------

async function runBaseline(ctx: StackContext, o: Options, guard: Guard): Promise<Results['baseline']> {
  const port = await freePort();
  const child = spawnChild(
    {
      label: 'baseline/express',
      kind: 'baseline',
      command: process.execPath,
      args: ctx.runtime.entry('bench/servers/baseline.ts'),
      env: childEnv({ PORT: String(port) }),
      cwd: ROOT,
      logDir: ctx.logDir,
    },
    ctx.cleanup,
  );
  ctx.memory.track(child);
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitHttpReady(child, `${url}/healthz`);
    // The same realistic signed body the hub gets; the bare app does not look at it.
    const [sample] = await makePool(1, 'whsec_baseline_unused', `b${randomBytes(2).toString('hex')}`);
    const body = (s: number) => new Array<SignedEvent>(Math.ceil(100_000 * s)).fill(sample);
    const target = `${url}/v1/webhooks/stripe/${MERCHANT_ID}`;
    if (o.warmup) await guarded(guard, { url: target, pool: body(o.warmup), connections: o.connections, pipelining: o.pipelining, durationS: o.warmup });
    const cpuDone = await startCpu(() => [child], undefined, 'baseline');
    const run = await guarded(guard, { url: target, pool: body(o.duration), connections: o.connections, pipelining: o.pipelining, durationS: o.duration });
    const cpu = await cpuDone();
    requireOk('baseline', run);
    log(`baseline: ${fmt(run.rps)} req/s`);
    return { run, cpu };
  } finally {
    ctx.memory.sample();
    await child.stop();
  }
}

async function withServicesStack<T>(
  ctx: StackContext,
  phase: string,
  redis: BenchRedis,
  roles: { role: 'api' | 'worker'; label: string }[],
  fn: (stack: HubStack, db: BenchDatabase) => Promise<T>,
): Promise<T> {
  await redis.clearQueues();
  const db = await createDatabase(ctx.cleanup);
  let stack: HubStack | undefined;
  try {
    stack = await startStack(ctx, phase, roles, { databaseUrl: db.url, redisUrl: redis.url });
    return await fn(stack, db);
  } finally {
    if (stack) await stack.stop();
    await db.drop();
    await redis.clearQueues();
  }
}

/** How long to wait for queued work to settle before calling it stuck. */
function settleMs(o: Options): number {
  return o.smoke ? 20_000 : 60_000;
}

function poolSize(o: Options, seconds: number, baselineRps?: number): number {
  const rps = o.poolRps ?? Math.min(8000, baselineRps ? baselineRps * 1.1 : 5000);
  return Math.max(o.connections * 2, Math.ceil(rps * seconds));
}

async function runIngest(ctx: StackContext, o: Options, guard: Guard, mode: 'embedded' | 'services', baselineRps?: number, redis?: BenchRedis): Promise<IngestResult> {
  const measure = async (stack: HubStack, db?: BenchDatabase): Promise<IngestResult> => {
    const tag = `${mode[0]}${randomBytes(3).toString('hex')}`;
    const t = Date.now();
    const url = `${stack.hubUrl}/v1/webhooks/stripe/${MERCHANT_ID}`;
    const warmPool = o.warmup ? await makePool(poolSize(o, o.warmup, baselineRps), stack.secrets.stripe, `${tag}w`, guard.isAborted) : [];
    const warm = warmPool.length
      ? await guarded(guard, { url, pool: warmPool, connections: o.connections, pipelining: o.pipelining, durationS: o.warmup })
      : emptyLoad();
    // Sized from the warm-up's rate (with room to spare) so the signing stays short; a pool that
    // runs out ends the run early, which the table flags.
    const fromWarm = warm.ok && !o.poolRps ? Math.ceil(Math.max(3 * warm.rps, 300) * o.duration) : Infinity;
    const pool = await makePool(Math.min(poolSize(o, o.duration, baselineRps), fromWarm), stack.secrets.stripe, tag, guard.isAborted);
    log(`${mode}: signed ${warmPool.length} + ${pool.length} events in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const from = Date.now();
    const cpuDone = await startCpu(() => stack.children, db);
    const run = await guarded(guard, { url, pool, connections: o.connections, pipelining: o.pipelining, durationS: o.duration });
    const cpu = await cpuDone();
    ctx.windows?.set(mode, { from, to: Date.now() });
    requireOk(`${mode} ingest`, run);
    if (run.poolExhausted) log(`${mode}: the pool of ${pool.length} signed events ran out after ${run.elapsedS.toFixed(1)} s; raise --pool-rps`);
    const stored = db
      ? Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM inbound_events`))[0].n)
      : await storedWebhooks(stack.hubUrl);
    const expected = warm.ok + run.ok;
    // More stored than counted is normal: requests in flight when autocannon stops are stored, unanswered.
    if (stored < expected) log(`${mode}: ${expected} webhooks acknowledged but only ${stored} stored`);
    log(`${mode}: ${fmt(run.rps)} webhooks/s acknowledged (${run.ok} in ${run.elapsedS.toFixed(1)} s), ${stored} stored`);
    return { warm, run, stored, expected, cpu };
  };
  if (mode === 'embedded') {
    const stack = await startStack(ctx, 'embedded', [{ role: 'all', label: 'hub' }]);
    try {
      return await measure(stack);
    } finally {
      await stack.stop();
    }
  }
  return withServicesStack(ctx, 'services', redis!, [{ role: 'api', label: 'api' }, { role: 'worker', label: 'worker' }], measure);
}

/** Sleep, cut short by an interrupt. */
async function sleepGuarded(ms: number, guard: Guard): Promise<void> {
  const until = Date.now() + ms;
  while (!guard.isAborted() && Date.now() < until) await sleep(Math.min(250, until - Date.now()));
}

/**
 * Wait (bounded) until no backend but the bench's reader is connected to the database, and a
 * moment more: a backend leaves pg_stat_activity just before it publishes its counters.
 */
async function backendsGone(db: BenchDatabase, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await pgBackends(db, true)).length && Date.now() < until) await sleep(50);
  await sleep(200);
}

function emptyLoad(): LoadResult {
  return { ok: 0, failed: 0, statuses: {}, elapsedS: 0, rps: 0, latenciesMs: [], used: 0, poolExhausted: false };
}

/** Outbox rows still to run (pending or in flight), and dead ones. */
async function outboxOpen(db: BenchDatabase): Promise<{ open: number; dead: number }> {
  const r = await db.query<{ open: string; dead: string }>(
    `SELECT count(*) FILTER (WHERE status IN ('pending','in_flight')) AS open, count(*) FILTER (WHERE status = 'dead') AS dead FROM outbox`,
  );
  return { open: Number(r[0].open), dead: Number(r[0].dead) };
}

/** What the bench asks of the hub's state while it runs: from its database, or over HTTP. */
interface HubProbe {
  /** Agency updates the hub has stored. */
  updatesStored(): Promise<number>;
  /** Outbox rows still to run (pending or in flight). */
  outboxOpen(): Promise<number>;
  /** Diagnostics for a phase that did not settle. */
  report(): Promise<string>;
}

/** Services mode: the bench reads the hub's PostgreSQL database. */
function dbProbe(db: BenchDatabase): HubProbe {
  return {
    updatesStored: async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM partner_updates`))[0].n),
    outboxOpen: async () => (await outboxOpen(db)).open,
    report: () => outboxReport(db),
  };
}

/**
 * Embedded mode: PGlite lives inside the hub process, so the bench asks the hub itself — its
 * /metrics (pushed updates stored) and the merchant API's `GET /v1/deliveries?scope=all` ("is
 * anything still owed for me?"), with a merchant token signed by the bench. Asked only once the
 * agency holds every case, like the database in services mode.
 */
function httpProbe(stack: HubStack): HubProbe {
  const token = issueMerchantToken({ hubId: 'collection-hub', secret: stack.secrets.merchantToken, merchantId: MERCHANT_ID, ttlSeconds: 3600 });
  const rows = async (status: string): Promise<number> => {
    const r = await fetch(`${stack.hubUrl}/v1/deliveries?status=${status}&scope=all&limit=500`, { headers: { authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`GET /v1/deliveries?status=${status}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    return ((await r.json()) as { data: unknown[] }).data.length;
  };
  return {
    async updatesStored() {
      const text = await (await fetch(`${stack.hubUrl}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^hub_partner_updates_total\{([^}]*)\}\s+(\d+(?:\.\d+)?)/gm)) {
        if (/via="push"/.test(m[1]) && /outcome="stored"/.test(m[1])) n += Number(m[2]);
      }
      return n;
    },
    async outboxOpen() {
      return (await rows('pending')) + (await rows('in_flight'));
    },
    async report() {
      return `${await rows('pending')} pending and ${await rows('in_flight')} in-flight outbox rows (at most 500 each counted)`;
    },
  };
}

/**
 * Wait (bounded) until the simulator holds `cases` cases, every update it made has been stored
 * by the hub, and no outbox row is left to run.
 */
async function waitSettled(stack: HubStack, probe: HubProbe, cases: number, timeoutMs: number, guard: Guard, everyMs = 200): Promise<{ done: boolean; at: number }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const sim = await simCounts(stack.simUrl);
    if (sim.cases >= cases && (await probe.updatesStored()) >= sim.updates && (await probe.outboxOpen()) === 0) return { done: true, at: Date.now() };
    if (Date.now() > until || guard.isAborted()) {
      if (!guard.isAborted()) log(`not settled after ${Math.round(timeoutMs / 1000)} s: ${await probe.report()}; agency holds ${(await simCounts(stack.simUrl)).cases} of ${cases} cases`);
      return { done: false, at: Date.now() };
    }
    await sleep(everyMs);
  }
}

/** What the outbox holds, by kind and status, and when the next pending row is due (diagnostics). */
async function outboxReport(db: BenchDatabase): Promise<string> {
  const rows = await db.query<{ kind: string; status: string; n: string; due: Date | null }>(
    `SELECT kind, status, count(*) AS n, min(next_attempt_at) FILTER (WHERE status = 'pending') AS due FROM outbox GROUP BY kind, status ORDER BY kind, status`,
  );
  return rows
    .map((r) => `${r.kind}:${r.status} ${r.n}${r.due ? ` (next due in ${Math.round((new Date(r.due).getTime() - Date.now()) / 1000)} s)` : ''}`)
    .join(', ') || 'outbox empty';
}

async function runAck(ctx: StackContext, o: Options, guard: Guard, redis: BenchRedis): Promise<Results['ack']> {
  const rate = o.ackRate;
  // A short warm-up (JIT, connections) whose work is let settle, so each run starts on an empty queue.
  const warmN = o.warmup ? Math.min(Math.ceil(rate * o.warmup), 200) : 0;
  const n = Math.ceil(rate * o.duration);
  const prepare = async (stack: HubStack, db: BenchDatabase) => {
    const pool = await makePool(warmN + n, stack.secrets.stripe, `a${randomBytes(3).toString('hex')}`, guard.isAborted);
    const url = `${stack.hubUrl}/v1/webhooks/stripe/${MERCHANT_ID}`;
    if (warmN) {
      const w = await paced({ url, pool: pool.slice(0, warmN), rate, seconds: warmN / rate, isAborted: guard.isAborted });
      await waitSettled(stack, dbProbe(db), w.ok, settleMs(o) / 2, guard);
    }
    return { url, pool: pool.slice(warmN) };
  };
  const roles: { role: 'api' | 'worker'; label: string }[] = [{ role: 'api', label: 'api' }, { role: 'worker', label: 'worker' }];
  // The JSON figure: autocannon at a fixed overall rate (a per-second quota over the connections).
  const c = await withServicesStack(ctx, 'ack', redis, roles, async (stack, db) => {
    const { url, pool } = await prepare(stack, db);
    const from = Date.now();
    const r = await guarded(guard, { url, pool, connections: o.ackConnections, durationS: o.duration + 1, overallRate: rate });
    ctx.windows?.set('ack', { from, to: Date.now() });
    return r;
  });
  requireOk('ack (autocannon)', c);
  // The same rate open-loop (one request every 1/rate s, whatever the answers do), in fresh
  // processes and database rather than on the backlog the first run may have left.
  const p = await withServicesStack(ctx, 'ack-paced', redis, roles, async (stack, db) => {
    const { url, pool } = await prepare(stack, db);
    const from = Date.now();
    const r = await paced({ url, pool, rate, seconds: o.duration, isAborted: guard.isAborted });
    ctx.windows?.set('ack-paced', { from, to: Date.now() });
    return r;
  });
  requireOk('ack (paced)', p);
  const cannonLat = latencySummary(c.latenciesMs);
  const pacedLat = latencySummary(p.latencyMs);
  log(`ack @${rate}/s: autocannon p50 ${fmt(cannonLat.p50)} ms p99 ${fmt(cannonLat.p99)} ms (${fmt(c.rps)} req/s); paced p50 ${fmt(pacedLat.p50)} ms p99 ${fmt(pacedLat.p99)} ms`);
  return { rate, cannon: c, cannonLat, paced: { sent: p.sent, ok: p.ok, lat: pacedLat, late: p.late, elapsedS: p.elapsedS } };
}

interface SimCaseView {
  id: string;
  reference: string;
  createdAt: string;
  claims: { reference: string; number?: string }[];
}

/**
 * Webhooks sent open-loop at a fixed rate, each followed to its case at the agency simulator.
 * Services mode: role api + one worker on PostgreSQL + Redis; embedded mode: role all on PGlite.
 */
async function runE2e(ctx: StackContext, o: Options, guard: Guard, mode: 'embedded' | 'services', redis?: BenchRedis): Promise<E2eResult> {
  const phase = mode === 'services' ? 'e2e' : 'e2e-embedded';
  const rate = mode === 'services' ? o.e2eRate : o.e2eEmbeddedRate;
  const measure = async (stack: HubStack, db?: BenchDatabase): Promise<E2eResult> => {
    const probe = db ? dbProbe(db) : httpProbe(stack);
    const tag = `${mode === 'services' ? 'e' : 'm'}${randomBytes(3).toString('hex')}`;
    const url = `${stack.hubUrl}/v1/webhooks/stripe/${MERCHANT_ID}`;
    const warmN = o.warmup ? Math.min(Math.ceil(rate * o.warmup), 100) : 0;
    const warmS = warmN / rate;
    const n = Math.round(rate * o.e2eSeconds);
    const warmPool = await makePool(warmN, stack.secrets.stripe, `${tag}w`, guard.isAborted);
    const pool = await makePool(n, stack.secrets.stripe, tag, guard.isAborted);
    let warmOk = 0;
    if (warmN) {
      warmOk = (await paced({ url, pool: warmPool, rate, seconds: warmS, isAborted: guard.isAborted })).ok;
      await waitSettled(stack, probe, warmOk, settleMs(o), guard);
    }
    const from = Date.now();
    const cpuDone = await startCpu(() => stack.children, db);
    const p = await paced({ url, pool, rate, seconds: o.e2eSeconds, isAborted: guard.isAborted });
    requireOk(phase, p);
    const settled = await waitSettled(stack, probe, warmOk + p.ok, settleMs(o) + o.e2eSeconds * 1000, guard);
    const cpu = await cpuDone();
    ctx.windows?.set(phase, { from, to: settled.at });
    if (!settled.done) log(`${phase}: not every case reached the agency within the wait; the missing ones count as their wait so far`);

    // Each case's claim carries the Stripe invoice number, which names the event it came from.
    const { cases } = (await (await fetch(`${stack.simUrl}/_sim/cases`)).json()) as { cases: SimCaseView[] };
    const acceptedAt = new Map<string, number>();
    for (const c of cases) for (const cl of c.claims) if (cl.number) acceptedAt.set(cl.number, Date.parse(c.createdAt));
    const lat: number[] = [];
    let missing = 0;
    for (let i = 0; i < pool.length; i++) {
      if (!Number.isFinite(p.latencyMs[i])) continue; // not acknowledged: not the hub's to deliver
      const at = acceptedAt.get(pool[i].number);
      if (at === undefined) {
        missing++;
        lat.push(settled.at - p.sentAt[i]);
      } else lat.push(at - p.sentAt[i]);
    }
    const summary = latencySummary(lat);
    log(`${phase} @${rate}/s: p50 ${fmt(summary.p50)} ms p99 ${fmt(summary.p99)} ms, ${missing} missing`);

    // The hub's own view of the same events, stage by stage, from its database: PostgreSQL as it
    // runs, or the embedded hub's PGlite directory once the hub has stopped (one process at a time).
    let stages: E2eResult['stages'] = [];
    let stagesNote: string | undefined;
    let hubDb: (Queryable & { close?: () => Promise<void> }) | undefined = db;
    try {
      if (!hubDb) {
        await stack.stopHubs();
        hubDb = await openEmbeddedDb(stack.dataDir);
      }
      stages = await e2eStages(hubDb, tag);
    } catch (err) {
      stagesNote = `the hub's database could not be read: ${(err as Error).message.split('\n')[0]}`;
      log(`${phase}: ${stagesNote}`);
    } finally {
      await hubDb?.close?.().catch(() => undefined);
    }
    const tables = db ? await pgTableStats(db) : undefined;
    return {
      mode, rate, sent: p.sent, ok: p.ok, atAgency: lat.length - missing, missing, sendLate: p.late,
      ackLat: latencySummary(p.latencyMs), lat: summary, stages, stagesNote, cpu, tables, events: warmOk + p.ok,
    };
  };
  if (mode === 'embedded') {
    const stack = await startStack(ctx, phase, [{ role: 'all', label: 'hub' }]);
    try {
      return await measure(stack);
    } finally {
      await stack.stop();
    }
  }
  return withServicesStack(ctx, phase, redis!, [{ role: 'api', label: 'api' }, { role: 'worker', label: 'worker' }], measure);
}

/** received_at → processed_at → case created_at → submitted_at of the phase's events, from the hub's database. */
async function e2eStages(db: Queryable, tag: string): Promise<E2eResult['stages']> {
  const rows = await db.query<{ received: Date; processed: Date | null; opened: Date | null; submitted: Date | null }>(
    `SELECT e.received_at AS received, e.processed_at AS processed, c.created_at AS opened, c.submitted_at AS submitted
       FROM inbound_events e
       JOIN invoices i ON i.merchant_id = e.merchant_id AND i.provider = e.provider AND i.provider_ref = e.payload #>> '{data,object,id}'
       LEFT JOIN cases c ON c.id = i.case_id
      WHERE i.number LIKE $1`,
    [`BENCH-${tag}-%`],
  );
  const gap = (a: Date | null, b: Date | null) => (a && b ? new Date(b).getTime() - new Date(a).getTime() : NaN);
  return [
    { name: 'received → event processed (process_event)', lat: latencySummary(rows.map((r) => gap(r.received, r.processed))) },
    { name: 'event processed → case opened (handover_check)', lat: latencySummary(rows.map((r) => gap(r.processed, r.opened))) },
    { name: 'case opened → accepted by agency (agency.create_case)', lat: latencySummary(rows.map((r) => gap(r.opened, r.submitted))) },
    { name: 'received → submitted (hub clock, whole pipeline)', lat: latencySummary(rows.map((r) => gap(r.received, r.submitted))) },
  ];
}

async function runDrain(ctx: StackContext, o: Options, guard: Guard, redis: BenchRedis): Promise<Results['drain']> {
  return withServicesStack(ctx, 'drain', redis, [{ role: 'api', label: 'api' }], async (stack, db) => {
    const pool = await makePool(o.backlog, stack.secrets.stripe, `d${randomBytes(3).toString('hex')}`, guard.isAborted);
    const url = `${stack.hubUrl}/v1/webhooks/stripe/${MERCHANT_ID}`;
    // Bounded in count (the pool) and in time (well inside the signatures' 300 s).
    const ingest = await guarded(guard, { url, pool, connections: o.connections, pipelining: o.pipelining, durationS: 240 });
    const ingestEnded = Date.now();
    requireOk('drain backlog', ingest);
    const [{ n }] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM inbound_events`);
    const backlog = Number(n);
    // The api's backends may hold the ingest's counters for up to 10 s after they went idle
    // (bench/lib/sql-counts.ts): the commit count starts once they must have published them.
    const statsWaitMs = o.smoke ? 0 : Math.max(0, ingestEnded + 10_500 - Date.now());
    log(`drain: backlog of ${backlog} events stored in ${ingest.elapsedS.toFixed(1)} s; ${statsWaitMs ? `starting ${o.drainWorkers} worker(s) in ${(statsWaitMs / 1000).toFixed(1)} s (database statistics settle)` : `starting ${o.drainWorkers} worker(s)`}`);
    if (statsWaitMs) await sleepGuarded(statsWaitMs, guard);
    const sqlDone = await startSqlCount(db);
    const statsAfterS = o.smoke ? 0 : (Date.now() - ingestEnded) / 1000;
    const spawnedAt = Date.now();
    const cpuDone = await startCpu(() => stack.children, db);
    for (let k = 1; k <= o.drainWorkers; k++) await stack.startHub('worker', `worker-${k}`);
    const settled = await waitSettled(stack, dbProbe(db), backlog, settleMs(o) + backlog * 50, guard, 100);
    const cpu = await cpuDone();
    ctx.windows?.set('drain', { from: spawnedAt, to: settled.at });
    // The statement and commit counts close once the hub's processes have exited: an exiting
    // backend publishes its counters at once, an idle one may keep them for 10 s.
    await stack.stopHubs();
    await backendsGone(db, 10_000);
    const sql = await sqlDone();
    if (sql.statements === null) log(`drain: statements_per_event not measured: ${sql.why}`);
    else log(`drain: ${perEvent(sql.statements / backlog)} SQL statements and ${perEvent(sql.commits / backlog)} commits per event`);
    const [t] = await db.query<{ first: Date | null; last: Date | null }>(`SELECT min(done_at) AS first, max(done_at) AS last FROM outbox WHERE status = 'done'`);
    const first = t.first ? new Date(t.first).getTime() : spawnedAt;
    const last = t.last ? new Date(t.last).getTime() : settled.at;
    const sim = await simCounts(stack.simUrl);
    const done = settled.done ? backlog : Math.min(backlog, sim.cases);
    const tables = await pgTableStats(db);
    const kinds = await db.query<{ kind: string; status: string; n: string }>(`SELECT kind, status, count(*) AS n FROM outbox GROUP BY kind, status ORDER BY kind, status`);
    const outbox = Object.fromEntries(kinds.map((k) => [`${k.kind}:${k.status}`, Number(k.n)]));
    const epsDb = done / Math.max(0.001, (last - first) / 1000);
    const epsWall = done / Math.max(0.001, (settled.at - spawnedAt) / 1000);
    if (!settled.done) log(`drain: did not finish in time (${sim.cases}/${backlog} cases at the agency)`);
    log(`drain: ${fmt(epsDb)} events/s (first to last outbox completion), ${fmt(epsWall)} events/s from worker spawn`);
    return {
      backlog, workers: o.drainWorkers, ingest, epsDb, epsWall, firstDoneAfterSpawnS: (first - spawnedAt) / 1000,
      seconds: (last - first) / 1000, outbox, completed: settled.done, cpu, tables, sql, statsAfterS,
    };
  });
}

// ---- output ---------------------------------------------------------------------------------

const KEYS = [
  'baseline_rps', 'ingest_rps_embedded', 'ingest_rps_services', 'ingest_ratio_services', 'ack_p50_ms', 'ack_p99_ms', 'e2e_p50_ms', 'e2e_p99_ms',
  'e2e_p50_ms_embedded', 'e2e_p99_ms_embedded', 'drain_eps', 'statements_per_event', 'commits_per_event', 'rss_mb_peak', 'rss_mb_peak_embedded',
] as const;
type Summary = Record<(typeof KEYS)[number], number | null>;

/** Hub processes of the embedded-mode phases (PGlite inside): labels are `<phase>/<name>`. */
const isEmbeddedHub = (p: MemoryPeak) => p.kind === 'hub' && (p.label.startsWith('embedded/') || p.label.startsWith('e2e-embedded/'));

/** Per-event counts keep 3 significant digits (a batched pipeline commits far less than once per event). */
const perEvent = (x: number) => (Math.abs(x) >= 100 ? Math.round(x) : Number(x.toPrecision(3)));

function keyFigures(r: Results, peaks: MemoryPeak[]): Summary {
  const num = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? null : round(x));
  const hubPeaks = peaks.filter((p) => p.kind === 'hub');
  const embeddedPeaks = peaks.filter(isEmbeddedHub);
  const sql = r.drain?.sql;
  const events = r.drain?.backlog ?? 0;
  return {
    baseline_rps: num(r.baseline?.run.rps),
    ingest_rps_embedded: num(r.embedded?.run.rps),
    ingest_rps_services: num(r.services?.run.rps),
    ingest_ratio_services: r.services && r.baseline ? Math.round((r.services.run.rps / r.baseline.run.rps) * 1000) / 1000 : null,
    ack_p50_ms: num(r.ack?.cannonLat.p50),
    ack_p99_ms: num(r.ack?.cannonLat.p99),
    e2e_p50_ms: num(r.e2e?.lat.p50),
    e2e_p99_ms: num(r.e2e?.lat.p99),
    e2e_p50_ms_embedded: num(r.e2eEmbedded?.lat.p50),
    e2e_p99_ms_embedded: num(r.e2eEmbedded?.lat.p99),
    drain_eps: num(r.drain?.epsDb),
    statements_per_event: sql && sql.statements !== null && events ? perEvent(sql.statements / events) : null,
    commits_per_event: sql && events ? perEvent(sql.commits / events) : null,
    rss_mb_peak: hubPeaks.length ? num(Math.max(...hubPeaks.map((p) => p.rssMb))) : null,
    rss_mb_peak_embedded: embeddedPeaks.length ? num(Math.max(...embeddedPeaks.map((p) => p.rssMb))) : null,
  };
}

/** The targets of issue 14 (its "Targets" table). */
const TARGETS: Partial<Record<keyof Summary, { op: '>=' | '<='; value: number }>> = {
  ingest_rps_embedded: { op: '>=', value: 500 },
  ingest_ratio_services: { op: '>=', value: 0.5 },
  ack_p99_ms: { op: '<=', value: 25 },
  e2e_p99_ms: { op: '<=', value: 1000 },
  e2e_p99_ms_embedded: { op: '<=', value: 2000 },
  drain_eps: { op: '>=', value: 1000 },
  statements_per_event: { op: '<=', value: 5 },
  rss_mb_peak: { op: '<=', value: 300 },
  rss_mb_peak_embedded: { op: '<=', value: 300 },
};

/** `whyNull`: why a figure of a phase that ran is missing. */
function verdict(key: keyof Summary, v: number | null, whyNull?: string): string {
  const t = TARGETS[key];
  if (!t) return '';
  if (v === null) return `${t.op} ${t.value.toLocaleString('en-US')} (${whyNull ? `not measured: ${whyNull}` : 'not run'})`;
  const ok = t.op === '>=' ? v >= t.value : v <= t.value;
  const miss = t.op === '>=' ? `${Math.round((1 - v / t.value) * 100)} % short` : `${(v / t.value).toFixed(1)}× the limit`;
  return `${t.op} ${t.value.toLocaleString('en-US')}: ${ok ? 'met' : `**missed** (${miss})`}`;
}

function renderReport(o: Options, r: Results, peaks: MemoryPeak[], s: Summary, runtime: Runtime, started: Date, loadAtStart: number[]): string {
  const cpu = os.cpus();
  const L: string[] = [];
  L.push(`### Run of ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
  L.push('');
  L.push(
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}; ` +
      `node ${process.version}; hub ${runtime.note}; load average at start ${loadAtStart.map((x) => x.toFixed(2)).join(' / ')}.`,
  );
  L.push(`Flags: \`${o.argv.length ? o.argv.join(' ') : '(defaults)'}\` → duration ${o.duration} s, warm-up ${o.warmup} s, ${o.connections} connections, pipelining ${o.pipelining}, ` +
    `ack ${o.ackRate}/s over ${o.ackConnections} connections, e2e ${o.e2eRate}/s (services) and ${o.e2eEmbeddedRate}/s (embedded) for ${o.e2eSeconds} s, backlog ${o.backlog} with ${o.drainWorkers} workers.`);
  L.push('');
  L.push('| figure | value | target |');
  L.push('|---|---:|---|');
  const unit: Record<keyof Summary, string> = {
    baseline_rps: 'req/s', ingest_rps_embedded: 'webhooks/s', ingest_rps_services: 'webhooks/s', ingest_ratio_services: '', ack_p50_ms: 'ms', ack_p99_ms: 'ms',
    e2e_p50_ms: 'ms', e2e_p99_ms: 'ms', e2e_p50_ms_embedded: 'ms', e2e_p99_ms_embedded: 'ms', drain_eps: 'events/s',
    statements_per_event: 'statements', commits_per_event: 'commits', rss_mb_peak: 'MB', rss_mb_peak_embedded: 'MB',
  };
  const whyNull: Partial<Record<keyof Summary, string>> = { statements_per_event: r.drain?.sql.why };
  const value = (k: keyof Summary, v: number) => (k === 'statements_per_event' || k === 'commits_per_event' ? v.toLocaleString('en-US', { maximumSignificantDigits: 3 }) : fmt(v));
  for (const k of KEYS) L.push(`| \`${k}\` | ${s[k] === null ? '—' : `${value(k, s[k] as number)} ${unit[k]}`.trimEnd()} | ${verdict(k, s[k], whyNull[k])} |`);
  L.push('');
  L.push('Details:');
  L.push('');
  L.push('| phase | measured | notes |');
  L.push('|---|---|---|');
  const load = (x: LoadResult) => `${x.ok.toLocaleString('en-US')} × 2xx in ${x.elapsedS.toFixed(1)} s${x.failed ? `, ${x.failed} failed ${JSON.stringify(x.statuses)}` : ''}`;
  if (r.baseline) L.push(`| baseline | ${fmt(r.baseline.run.rps)} req/s | ${load(r.baseline.run)}; latency p50 ${fmt(latencySummary(r.baseline.run.latenciesMs).p50)} ms, p99 ${fmt(latencySummary(r.baseline.run.latenciesMs).p99)} ms; ${describeCpu(r.baseline.cpu, r.baseline.run.ok).replace(/event/g, 'request')} |`);
  for (const [name, x] of [['embedded', r.embedded], ['services', r.services]] as const) {
    if (!x) continue;
    const l = latencySummary(x.run.latenciesMs);
    L.push(
      `| ingest ${name} | ${fmt(x.run.rps)} webhooks/s | ${load(x.run)}; ack p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms; ` +
        `${x.stored.toLocaleString('en-US')} stored, ${x.expected.toLocaleString('en-US')} acknowledged, warm-up included${x.stored < x.expected ? ' (**fewer stored than acknowledged**)' : ''}${x.run.poolExhausted ? '; **pool ran out early**' : ''}; ${describeCpu(x.cpu, x.run.ok)} |`,
    );
  }
  if (r.ack) {
    const a = r.ack;
    L.push(`| ack @ ${a.rate}/s, autocannon overallRate | p50 ${fmt(a.cannonLat.p50)} ms, p99 ${fmt(a.cannonLat.p99)} ms | ${load(a.cannon)} (${fmt(a.cannon.rps)} req/s); max ${fmt(a.cannonLat.max)} ms |`);
    L.push(`| ack @ ${a.rate}/s, paced open loop | p50 ${fmt(a.paced.lat.p50)} ms, p99 ${fmt(a.paced.lat.p99)} ms | ${a.paced.ok.toLocaleString('en-US')} of ${a.paced.sent.toLocaleString('en-US')} × 2xx in ${a.paced.elapsedS.toFixed(1)} s; max ${fmt(a.paced.lat.max)} ms${a.paced.late ? `; ${a.paced.late} sends > 5 ms late` : ''} |`);
  }
  for (const e of [r.e2eEmbedded, r.e2e]) {
    if (!e) continue;
    const name = e.mode === 'embedded' ? 'e2e embedded' : 'e2e';
    const where = e.mode === 'embedded' ? ' (role all, PGlite)' : ' (api + worker, PostgreSQL + Redis)';
    L.push(`| ${name} @ ${e.rate}/s: sent → case at agency${where} | p50 ${fmt(e.lat.p50)} ms, p99 ${fmt(e.lat.p99)} ms${e.missing ? ' (lower bounds)' : ''} | ${e.atAgency.toLocaleString('en-US')} of ${e.ok.toLocaleString('en-US')} acknowledged events became cases at the agency${e.missing ? ` (**${e.missing} had not arrived when the wait ended; counted with their wait so far**)` : ''}; max ${fmt(e.lat.max)} ms; ack p50 ${fmt(e.ackLat.p50)} ms, p99 ${fmt(e.ackLat.p99)} ms${e.sendLate ? `; ${e.sendLate} sends > 5 ms late` : ''} |`);
    L.push(`| ${name}: CPU | | ${describeCpu(e.cpu, e.ok)} |`);
    if (e.tables) L.push(`| ${name}: PostgreSQL tables | | ${describeTables(e.tables, e.events)} |`);
    for (const st of e.stages) L.push(`| ${name} stage: ${st.name} | p50 ${fmt(st.lat.p50)} ms, p99 ${fmt(st.lat.p99)} ms | from the hub's database${e.mode === 'embedded' ? ' (read after the hub stopped)' : ''}, ${st.lat.n} events |`);
    if (e.stagesNote) L.push(`| ${name} stages | | ${e.stagesNote} |`);
  }
  if (r.drain) {
    const d = r.drain;
    const ob = Object.entries(d.outbox).map(([k, v]) => `${k} ${v}`).join(', ');
    L.push(`| drain: ${d.backlog.toLocaleString('en-US')} events, ${d.workers} workers | ${fmt(d.epsDb)} events/s | ${d.seconds.toFixed(1)} s from the first to the last outbox completion; ${fmt(d.epsWall)} events/s counting worker start-up (first completion ${d.firstDoneAfterSpawnS.toFixed(1)} s after spawn); backlog ingested at ${fmt(d.ingest.rps)}/s (api alone)${d.completed ? '' : '; **did not finish**'}; outbox: ${ob}; ${describeCpu(d.cpu, d.backlog)} |`);
    L.push(`| drain: SQL per event | ${describeSqlValue(d.sql, d.backlog)} | ${describeSql(d.sql, d.backlog, d.statsAfterS)} |`);
    L.push(`| drain: PostgreSQL tables | | ${describeTables(d.tables, d.backlog)} (ingest included) |`);
  }
  L.push('');
  L.push('Peak memory per process (VmRSS sampled every 200 ms / kernel high-water mark VmHWM):');
  L.push('');
  L.push('| process | VmRSS peak | VmHWM |');
  L.push('|---|---:|---:|');
  for (const p of peaks) L.push(`| ${p.label}${p.kind === 'hub' ? '' : ` (${p.kind})`} | ${fmt(p.rssMb)} MB | ${fmt(p.hwmMb)} MB |`);
  const hubMax = (pred: (p: MemoryPeak) => boolean) => {
    const xs = peaks.filter((p) => p.kind === 'hub' && pred(p)).map((p) => p.rssMb);
    return xs.length ? `${fmt(Math.max(...xs))} MB` : '—';
  };
  L.push('');
  L.push(`Largest hub process: embedded mode (PGlite inside) ${hubMax(isEmbeddedHub)}; services mode (api/worker) ${hubMax((p) => !isEmbeddedHub(p))}.`);
  return L.join('\n');
}

const START = '<!-- bench:results:start -->';
const END = '<!-- bench:results:end -->';

/** Replace the generated block of BENCHMARKS.md (the hand-written text around it stays). */
function writeBenchmarksMd(report: string): void {
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const block = `${START}\n<!-- written by \`npm run bench\`; edit outside these markers -->\n\n${report}\n\n${END}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  if (text.includes(START) && text.includes(END)) {
    text = text.slice(0, text.indexOf(START)) + block + text.slice(text.indexOf(END) + END.length);
  } else {
    text = `${text || '# Benchmarks\n\nHow to run: `npm run bench` (see `npm run bench -- --help`).\n'}\n## Latest results\n\n${block}\n`;
  }
  fs.writeFileSync(file, text);
}

/** Summaries of the hub profiles, each cut to its phase's measured window. */
function printProfiles(ctx: StackContext): void {
  for (const p of ctx.profiles ?? []) {
    const w = ctx.windows?.get(p.phase);
    try {
      if (!fs.existsSync(p.file)) throw new Error('no profile written (did the process exit cleanly?)');
      const window = w && p.child.exitedAt ? { ...w, exitedAt: p.child.exitedAt } : undefined;
      log(`profile ${p.child.label}\n${formatProfile(summarizeProfile(p.file, ROOT, 20, window))}`);
    } catch (err) {
      log(`profile ${p.child.label}: ${(err as Error).message}`);
    }
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(`failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
