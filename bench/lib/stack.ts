/**
 * How the bench runs the hub, the agency simulator and the bare express app: compiled once
 * with the project's own build (tsconfig.build.json) into a temp directory and run with plain
 * `node`, or, when that build fails, from source with `node --import tsx`. Either way the
 * child is the node process itself (no npx/tsx wrapper), so its pid is the one to measure.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { issueMerchantToken } from '../../src/http/merchant-auth';
import { initialiseInChild } from '../../src/store/pglite-init';
import type { Cleanup } from './cleanup';
import { freePort, spawnChild, waitHttpReady, type Child, type MemorySampler } from './processes';

const run = promisify(execFile);

export const ROOT = path.resolve(__dirname, '..', '..');

export type RuntimeKind = 'node' | 'tsx';

export interface Runtime {
  kind: RuntimeKind;
  /** Why this runtime (e.g. the build error that made us fall back). */
  note: string;
  /** [script, ...args] for node, given a source path relative to the repository (`src/main.ts`). */
  entry(sourcePath: string): string[];
}

/**
 * `tsc -p bench/tsconfig.bench.json` (the build config plus bench/servers) into `outDir`, with
 * the files the compiled code reads at run time copied where it looks for them (as the
 * Dockerfile does) and node_modules linked so `require` resolves.
 */
export async function prepareRuntime(want: 'auto' | RuntimeKind, workDir: string, log: (s: string) => void): Promise<Runtime> {
  const fromSource: Runtime = {
    kind: 'tsx',
    note: 'from source with node --import tsx',
    entry: (p) => ['--import', 'tsx', path.join(ROOT, p)],
  };
  if (want === 'tsx') return fromSource;
  const outDir = path.join(workDir, 'build');
  const started = Date.now();
  try {
    await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'bench/tsconfig.bench.json'), '--outDir', outDir], {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const out = ((err as { stdout?: string }).stdout ?? (err as Error).message).trim().split('\n').slice(0, 5).join('\n');
    if (want === 'node') throw new Error(`the build failed:\n${out}`);
    log(`build failed, running from source with tsx instead:\n${out}`);
    return { ...fromSource, note: `build failed (${out.split('\n')[0]}); from source with node --import tsx` };
  }
  fs.cpSync(path.join(ROOT, 'src/store/migrations'), path.join(outDir, 'src/store/migrations'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'mappings'), path.join(outDir, 'mappings'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(outDir, 'node_modules'), 'dir');
  log(`built the hub in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return {
    kind: 'node',
    note: 'compiled with tsc (tsconfig.build.json), run with node',
    entry: (p) => [path.join(outDir, p.replace(/\.ts$/, '.js'))],
  };
}

/** Random secret of `bytes` bytes, as letters and digits (YAML-safe, never read as a number). */
export function secret(prefix: string, bytes = 24): string {
  return `${prefix}${randomBytes(bytes).toString('hex')}`;
}

export interface StackSecrets {
  stripe: string;
  hubToAgency: string;
  agencyToHub: string;
  merchantToken: string;
  identifierHash: string;
}

export const MERCHANT_ID = 'bench';
export const PARTNER_ID = 'refagency';

export function newSecrets(): StackSecrets {
  return {
    stripe: secret('whsec_bench_'),
    hubToAgency: secret('bench-hub-to-agency-'),
    agencyToHub: secret('bench-agency-to-hub-'),
    merchantToken: secret('bench-merchant-token-'),
    identifierHash: secret('bench-identifier-hash-'),
  };
}

/**
 * The hub config of one phase: one merchant whose every final failure is handed over at once
 * (handoverAfterDays 0, minAmount 0), one reference partner (the simulator), no scheduled pull,
 * delivery settings left at their defaults, logLevel warn.
 */
export function configYaml(o: { hubPort: number; simPort: number; dataDir: string; secrets: StackSecrets }): string {
  return `# written by bench/run.ts for one phase
hub: { id: collection-hub, publicUrl: "http://127.0.0.1:${o.hubPort}", port: ${o.hubPort}, host: 127.0.0.1, dataDir: "${o.dataDir}", logLevel: warn, identifierHashSecret: ${o.secrets.identifierHash} }
auth: { merchantTokenSecret: ${o.secrets.merchantToken} }
# One merchant from one address is not what the flood guards are for: off, so they do not cap the load.
rateLimits: { webhooksPerSecondPerMerchant: 0, perAddressPerSecond: 0, partnerPushPerSecond: 0 }
merchants:
  - id: ${MERCHANT_ID}
    name: Bench Subscriptions BV
    country: NL
    providers:
      stripe: { webhookSecret: ${o.secrets.stripe} }
    partner: ${PARTNER_ID}
    policy: { handoverAfterDays: 0, minAmount: { value: 0, currency: EUR }, stackWindowDays: 45 }
partners:
  - id: ${PARTNER_ID}
    connector: reference
    name: Bench Agency (simulator)
    baseUrl: http://127.0.0.1:${o.simPort}
    timeoutMs: 10000
    auth:
      outbound: { alg: HS256, secret: ${o.secrets.hubToAgency} }
      inbound: { alg: HS256, secret: ${o.secrets.agencyToHub} }
`;
}

/** The environment of a child: ours minus anything that would change which services the hub uses. */
export function childEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production' };
  for (const k of ['DATABASE_URL', 'REDIS_URL', 'HUB_CONFIG', 'PORT', 'LOG_LEVEL', 'NODE_OPTIONS']) delete env[k];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface StackContext {
  runtime: Runtime;
  cleanup: Cleanup;
  memory: MemorySampler;
  logDir: string;
  /** Where --cpu-prof writes, when profiling. */
  profileDir?: string;
  /** Every profiled hub process, to cut its profile to its phase's measured window afterwards. */
  profiles?: { file: string; phase: string; child: Child }[];
  /** The measured window of each phase, epoch ms (profiles are summarized over it). */
  windows?: Map<string, { from: number; to: number }>;
  /** An initialised, empty PGlite data directory, made once per run (see embeddedTemplate). */
  pgliteTemplate?: Promise<string>;
  log?: (line: string) => void;
}

/**
 * Copy a directory tree and fsync every file and directory of the copy, as the hub's own
 * initialisation leaves its new data directory: no dirty pages of the copy are left for the
 * kernel (or a checkpoint) to write out during the measured run.
 */
function copyToDisk(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
  const sync = (p: string) => {
    const fd = fs.openSync(p, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) sync(p);
    }
    sync(dir);
  };
  walk(to);
  sync(path.dirname(to));
}

/**
 * An initialised PGlite data directory for the embedded-mode phases to start from, made once per
 * run by the hub's own code (src/store/pglite-init.ts: initdb in a short-lived child process).
 * Each embedded phase starts from a copy instead of running initdb again, which takes seconds on an
 * idle machine and half a minute on a busy one; the hub opens a copy (flushed to disk like a
 * directory it initialised itself) exactly as it opens its own: the child's initdb is never in
 * the hub's RSS either way.
 */
function embeddedTemplate(ctx: StackContext): Promise<string> {
  ctx.pgliteTemplate ??= (async () => {
    const dir = path.join(path.dirname(ctx.logDir), 'pglite-template');
    const t = Date.now();
    await initialiseInChild(dir);
    ctx.log?.(`initialised a PGlite data directory for the embedded phases in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return dir;
  })();
  return ctx.pgliteTemplate;
}

export interface HubStack {
  phase: string;
  hubUrl: string;
  simUrl: string;
  configFile: string;
  /** The hub's `hub.dataDir` (embedded mode keeps its PGlite database under it). */
  dataDir: string;
  secrets: StackSecrets;
  env: NodeJS.ProcessEnv;
  children: Child[];
  /** Start one more hub process (e.g. a worker) with this stack's config. */
  startHub(role: 'all' | 'api' | 'worker', label: string): Promise<Child>;
  /** Stop the hub processes gracefully (memory sampled first); the simulator and the files stay. */
  stopHubs(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The simulator (never moving cases on by itself: step-ms 0, so the only update it pushes per
 * case is `submitted`) and the hub processes of one phase. `services` set: PostgreSQL + Redis.
 */
export async function startStack(
  ctx: StackContext,
  phase: string,
  roles: { role: 'all' | 'api' | 'worker'; label: string }[],
  services?: { databaseUrl: string; redisUrl: string },
): Promise<HubStack> {
  const dir = fs.mkdtempSync(path.join(ctx.logDir, `${phase}-`));
  const [hubPort, simPort] = [await freePort(), await freePort()];
  const secrets = newSecrets();
  const configFile = path.join(dir, 'hub.yaml');
  const dataDir = path.join(dir, 'data');
  fs.writeFileSync(configFile, configYaml({ hubPort, simPort, dataDir, secrets }));
  // Embedded: src/hub.ts keeps PGlite in <dataDir>/pglite (were that to move, the hub would run initdb itself, only slower).
  if (!services) copyToDisk(await embeddedTemplate(ctx), path.join(dataDir, 'pglite'));
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  const simUrl = `http://127.0.0.1:${simPort}`;
  const children: Child[] = [];

  const sim = spawnChild(
    {
      label: `${phase}/agency-sim`,
      kind: 'sim',
      command: process.execPath,
      args: [
        ...ctx.runtime.entry('sim/agency-sim/main.ts'),
        '--port', String(simPort), '--host', '127.0.0.1', '--partner-id', PARTNER_ID, '--hub-id', 'collection-hub',
        '--hub-url', hubUrl, '--in-secret', secrets.hubToAgency, '--out-secret', secrets.agencyToHub, '--step-ms', '0', '--seed', '1',
      ],
      env: childEnv({}),
      cwd: ROOT,
      logDir: ctx.logDir,
    },
    ctx.cleanup,
  );
  children.push(sim);
  ctx.memory.track(sim);

  const env = childEnv({
    HUB_CONFIG: configFile,
    DATABASE_URL: services?.databaseUrl,
    REDIS_URL: services?.redisUrl,
  });

  const startHub = async (role: 'all' | 'api' | 'worker', label: string): Promise<Child> => {
    const profileName = `${`${phase}-${label}`.replace(/[^A-Za-z0-9_.-]+/g, '_')}.cpuprofile`;
    const prof = ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${profileName}`] : [];
    const child = spawnChild(
      {
        label: `${phase}/${label}`,
        kind: 'hub',
        command: process.execPath,
        args: [...prof, ...ctx.runtime.entry('src/main.ts'), role],
        env: role === 'worker' ? env : { ...env, PORT: String(hubPort) },
        cwd: ROOT,
        logDir: ctx.logDir,
      },
      ctx.cleanup,
    );
    children.push(child);
    ctx.memory.track(child);
    if (ctx.profileDir) ctx.profiles?.push({ file: path.join(ctx.profileDir, profileName), phase, child });
    if (role !== 'worker') {
      await waitHttpReady(child, `${hubUrl}/healthz`);
      await assertOurHub(child, hubUrl, secrets);
    }
    return child;
  };

  const stopHubs = async () => {
    ctx.memory.sample();
    await Promise.all(children.filter((c) => c !== sim).map((c) => c.stop(15_000)));
  };
  const stack: HubStack = {
    phase,
    hubUrl,
    simUrl,
    configFile,
    dataDir,
    secrets,
    env,
    children,
    startHub,
    stopHubs,
    async stop() {
      const t = Date.now();
      // The hub processes first, gracefully (workers finish what they run), then the simulator.
      await stopHubs();
      await sim.stop(5000);
      fs.rmSync(dir, { recursive: true, force: true });
      ctx.log?.(`${phase}: processes stopped in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    },
  };
  const t = Date.now();
  try {
    // The first role (all, or api: it migrates a fresh database) starts with the simulator;
    // workers start once it is up.
    const [first, ...rest] = roles;
    await Promise.all([waitHttpReady(sim, `${simUrl}/healthz`), first ? startHub(first.role, first.label) : undefined]);
    for (const r of rest) await startHub(r.role, r.label);
    ctx.log?.(`${phase}: processes up in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  } catch (err) {
    await stack.stop().catch(() => undefined);
    throw err;
  }
  return stack;
}

/**
 * The port came from freePort() and was free for a moment only: on a machine shared with other
 * suites and bench runs, another hub may have taken it before ours listened (ours then exits),
 * and would answer /healthz as well — and then refuse our webhooks. A merchant call signed with
 * this stack's secret is answered 200 only by our hub.
 */
async function assertOurHub(child: Child, hubUrl: string, secrets: StackSecrets): Promise<void> {
  const token = issueMerchantToken({ hubId: 'collection-hub', secret: secrets.merchantToken, merchantId: MERCHANT_ID, ttlSeconds: 300 });
  const r = await fetch(`${hubUrl}/v1/me`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  await r.arrayBuffer();
  if (r.ok && !child.hasExited()) return;
  throw new Error(
    `${child.label}: the server answering on ${hubUrl} is not this hub (GET /v1/me: HTTP ${r.status}); another process took the port` +
      (child.hasExited() ? `, and the hub exited:\n${child.tail()}` : ''),
  );
}

/** The hub's own count of webhooks it stored (prometheus counter of the HTTP process). */
export async function storedWebhooks(hubUrl: string): Promise<number> {
  const text = await (await fetch(`${hubUrl}/metrics`)).text();
  const m = /^hub_webhooks_total\{[^}]*outcome="stored"[^}]*\}\s+(\d+(?:\.\d+)?)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Cases the simulator holds, and updates it made (GET /healthz). */
export async function simCounts(simUrl: string): Promise<{ cases: number; updates: number }> {
  const r = (await (await fetch(`${simUrl}/healthz`)).json()) as { cases: number; updates: number };
  return { cases: r.cases, updates: r.updates };
}
