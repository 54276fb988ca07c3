/**
 * What the fault suites (guarantees 1–5 of RELIABILITY.md) share: the hub's config for a run,
 * hubs in this process or as child processes (`node --import tsx src/main.ts`, killable with
 * SIGKILL), the agency simulator, a "PSP" that retries every webhook not answered 2xx the way
 * Stripe does, and the exactly-once checks against what the agency received.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { parseConfig, type HubConfig } from '../../../src/config/load';
import { createHub, type Hub, type HubRole } from '../../../src/hub';
import { createLogger, type Logger } from '../../../src/observability/logger';
import { Writable } from 'node:stream';
import type { Database } from '../../../src/store/db';
import { createAgencySimulator, type AgencySimulator, type AgencySimulatorOptions } from '../../../sim/agency-sim/simulator';
import { signStripe, stripeEvents, type InvoiceFacts } from '../../../sim/psp/stripe-events';
import { issueMerchantToken } from '../../../src/http/merchant-auth';
import { circuitBreakers } from '../../../src/delivery/circuit-breaker';
import { createTestDatabase, REDIS_URL, uniquePrefix } from '../../support/services';
import { freePort, SECRETS } from '../../support/stack';
import { deletePrefixKeys } from '../../integration/backends';

export const REPO = path.resolve(__dirname, '../../..');
/** FAULTS_LONG=1: the longer fault runs (more events, more kills) — not part of the default `npm test`. */
export const LONG = process.env.FAULTS_LONG === '1';
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Delivery = Partial<Omit<HubConfig['delivery'], 'circuitBreaker'>> & { circuitBreaker?: Partial<HubConfig['delivery']['circuitBreaker']> };

export interface ConfigOptions {
  hubPort: number;
  /** The agency's base URL (the simulator, or a front in the test). */
  partnerUrl: string;
  /** PGlite data directory (embedded mode in a child process). */
  dataDir?: string;
  delivery?: Delivery;
  /**
   * Start from the hub's own delivery defaults (lease, reconcile period, backoff, the circuit
   * breaker as it ships, enabled) instead of FAST_DELIVERY; `delivery` still overrides.
   */
  deliveryDefaults?: boolean;
  /** The hub's per-call timeout to the agency. */
  partnerTimeoutMs?: number;
  pullEverySeconds?: number;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  handoverAfterDays?: number;
}

/** Short delays and leases so a run takes seconds; the circuit breaker off unless a test sets it. */
export const FAST_DELIVERY = {
  maxAttempts: 50,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  reconcileEverySeconds: 1,
  leaseSeconds: 3,
  concurrency: 4,
};

export function configYaml(o: ConfigOptions): string {
  const d = o.deliveryDefaults ? { ...o.delivery } : { ...FAST_DELIVERY, ...o.delivery };
  const cb = o.deliveryDefaults ? { ...o.delivery?.circuitBreaker } : { enabled: false, ...o.delivery?.circuitBreaker };
  const { circuitBreaker: _cb, ...flat } = d as Delivery;
  const deliveryYaml = [...Object.entries(flat).map(([k, v]) => `${k}: ${v}`), ''].join(', ');
  const cbYaml = Object.entries(cb).map(([k, v]) => `${k}: ${v}`).join(', ');
  const policy = `{ handoverAfterDays: ${o.handoverAfterDays ?? 0}, minAmount: { value: 0, currency: EUR }, stackWindowDays: 45, countryRules: false }`;
  return `
hub: { id: collection-hub, publicUrl: "http://127.0.0.1:${o.hubPort}", port: ${o.hubPort}, host: 127.0.0.1, logLevel: ${o.logLevel ?? 'error'}${o.dataDir ? `, dataDir: "${o.dataDir}"` : ''}, identifierHashSecret: ${SECRETS.identifierHash} }
auth: { merchantTokenSecret: ${SECRETS.merchantToken} }
delivery: { ${deliveryYaml}circuitBreaker: { ${cbYaml} } }
merchants:
  - id: acme
    name: Acme Subscriptions BV
    country: NL
    providers:
      stripe: { webhookSecret: ${SECRETS.stripe.acme} }
    partner: refagency
    policy: ${policy}
partners:
  - id: refagency
    connector: reference
    baseUrl: ${o.partnerUrl}
    timeoutMs: ${o.partnerTimeoutMs ?? 2000}
    auth:
      outbound: { alg: HS256, secret: ${SECRETS.hubToAgency} }
      inbound: { alg: HS256, secret: ${SECRETS.agencyToHub} }
${o.pullEverySeconds ? `    pull: { everySeconds: ${o.pullEverySeconds} }` : ''}
`;
}

// ---- the agency simulator -------------------------------------------------------------------

export async function startSim(hubPort: number, opts: Partial<AgencySimulatorOptions> = {}): Promise<{ sim: AgencySimulator; url: string; port: number }> {
  const sim = createAgencySimulator({
    partnerId: 'refagency',
    hubId: 'collection-hub',
    hubUrl: `http://127.0.0.1:${hubPort}`,
    inSecret: SECRETS.hubToAgency,
    outSecret: SECRETS.agencyToHub,
    stepMs: 0,
    pushBackoffMs: 50,
    ...opts,
  });
  const { url, port } = await sim.start(0, '127.0.0.1');
  return { sim, url, port };
}

// ---- a front before the agency -----------------------------------------------------------------

export interface FrontReply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** Forward the call, but only after this long (a slow agency). */
export interface FrontSlow {
  forwardAfterMs: number;
}

export type FrontRule = (req: { method: string; path: string; body: any }) => FrontReply | FrontSlow | undefined;

export interface FrontLogEntry {
  at: number;
  /** When the answer was sent (or the forwarded call failed); undefined while the call is under way. */
  doneAt?: number;
  method: string;
  path: string;
  idempotencyKey: string | null;
  /** What the front answered itself, or 'forwarded' (the simulator answered). */
  answeredBy: 'front' | 'forwarded';
  status: number | null;
}

/**
 * A tiny HTTP front before the simulator for answers it cannot give (429 with a Retry-After of
 * our choosing, a 422 for one case): `rule` returns a reply to give instead, or undefined to
 * forward the call as it is. A call the simulator drops (timeout fault) is dropped here too.
 */
export async function startAgencyFront(target: string): Promise<{ url: string; log: FrontLogEntry[]; rule: FrontRule; setRule(r: FrontRule): void; stop(): Promise<void> }> {
  const http = await import('node:http');
  const log: FrontLogEntry[] = [];
  let rule: FrontRule = () => undefined;
  const server = http.createServer(async (req, res) => {
    // Logged on arrival: a call the hub gave up on while sending its body still reached us.
    const entry: FrontLogEntry = { at: Date.now(), method: req.method!, path: req.url!, idempotencyKey: (req.headers['idempotency-key'] as string) ?? null, answeredBy: 'front', status: null };
    log.push(entry);
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      entry.doneAt = Date.now();
      return;
    }
    const raw = Buffer.concat(chunks);
    let body: unknown;
    try {
      body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    const reply = rule({ method: req.method!, path: req.url!, body });
    if (reply && 'status' in reply) {
      entry.status = reply.status;
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(JSON.stringify(reply.body ?? {}));
      entry.doneAt = Date.now();
      return;
    }
    if (reply && 'forwardAfterMs' in reply) await sleep(reply.forwardAfterMs);
    entry.answeredBy = 'forwarded';
    try {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k)) headers[k] = v;
      const r = await fetch(`${target}${req.url}`, { method: req.method, headers, body: req.method === 'GET' ? undefined : raw });
      const text = await r.text();
      entry.status = r.status;
      const out: Record<string, string> = { 'content-type': r.headers.get('content-type') ?? 'application/json' };
      for (const h of ['retry-after', 'idempotent-replayed']) if (r.headers.get(h)) out[h] = r.headers.get(h)!;
      res.writeHead(r.status, out);
      res.end(text);
    } catch {
      res.socket?.destroy();
    }
    entry.doneAt = Date.now();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    get rule() {
      return rule;
    },
    setRule(r) {
      rule = r;
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---- the hub's own view of its agency calls ------------------------------------------------------

export type AgencyEvent =
  | { seq: number; at: number; kind: 'start'; call: number; op: string; key: string }
  | { seq: number; at: number; kind: 'end'; call: number; op: string; key: string; status: number | null; retryAfterMs?: number; ok: boolean }
  | { seq: number; at: number; kind: 'transition'; to: string; from: string; why: string };

/**
 * Records, in the hub's own event loop and so in their exact order, when each call to the
 * partner starts and ends and when its circuit changes state. Timings seen at the agency carry
 * the network and a loaded machine's scheduling; this order does not.
 */
export function spyOnAgencyCalls(hub: Hub, partnerId = 'refagency'): AgencyEvent[] {
  const log: AgencyEvent[] = [];
  let seq = 0;
  let calls = 0;
  const client = hub.ctx.partners.get(partnerId)!.client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const op of ['submitCase', 'addClaim', 'reportPayment', 'withdraw']) {
    const original = client[op].bind(client);
    client[op] = async (...args: unknown[]) => {
      const call = ++calls;
      const key = String((args[args.length - 1] as { idempotencyKey?: string })?.idempotencyKey ?? '');
      log.push({ seq: seq++, at: Date.now(), kind: 'start', call, op, key });
      try {
        const out = await original(...args);
        log.push({ seq: seq++, at: Date.now(), kind: 'end', call, op, key, status: 200, ok: true });
        return out;
      } catch (err) {
        const e = err as { status?: number; retryAfterMs?: number };
        log.push({ seq: seq++, at: Date.now(), kind: 'end', call, op, key, status: e.status ?? null, retryAfterMs: e.retryAfterMs, ok: false });
        throw err;
      }
    };
  }
  const breakers = circuitBreakers(hub.ctx);
  const onTransition = breakers.onTransition;
  breakers.onTransition = (t) => {
    if (t.partnerId === partnerId) log.push({ seq: seq++, at: t.at.getTime(), kind: 'transition', to: t.to, from: t.from, why: t.why });
    onTransition(t);
  };
  return log;
}

// ---- services (PostgreSQL database, Redis prefix) --------------------------------------------

export interface Services {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  redis: IORedis;
  /** Delete every key of this run's BullMQ prefix (what a Redis flush does to us, without touching anyone else). */
  flushQueue(): Promise<number>;
  cleanup(): Promise<void>;
}

export async function openServices(): Promise<Services> {
  const pg = await createTestDatabase();
  const prefix = uniquePrefix();
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined);
  return {
    databaseUrl: pg.url,
    redisUrl: REDIS_URL,
    prefix,
    redis,
    flushQueue: () => deletePrefixKeys(redis, prefix),
    async cleanup() {
      await deletePrefixKeys(redis, prefix).catch(() => undefined);
      redis.disconnect();
      await pg.drop().catch(() => undefined);
    },
  };
}

// ---- hubs in this process ---------------------------------------------------------------------

export interface InProcessHub {
  hub: Hub;
  url: string | null;
  config: HubConfig;
  stop(): Promise<void>;
}

/** A logger whose JSON lines the test can read (the hub's own record of what it decided). */
export function captureLog(level: 'warn' | 'info' = 'warn'): { logger: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) {
        if (!l.trim()) continue;
        try {
          lines.push(JSON.parse(l));
        } catch {
          // not a JSON line
        }
      }
      done();
    },
  });
  return { logger: createLogger({ level, stream }), lines };
}

export async function startHub(o: ConfigOptions & { role?: HubRole; databaseUrl?: string; redisUrl?: string; queuePrefix?: string; db?: Database; logger?: Logger }): Promise<InProcessHub> {
  const env: Record<string, string> = {};
  if (o.databaseUrl) env.DATABASE_URL = o.databaseUrl;
  if (o.redisUrl) env.REDIS_URL = o.redisUrl;
  const config = parseConfig(configYaml(o), env);
  const role = o.role ?? 'all';
  const hub = await createHub({ config, role, db: o.db, queuePrefix: o.queuePrefix, logger: o.logger ?? createLogger({ silent: true }) });
  const url = role === 'worker' ? null : (await hub.listen(o.hubPort, '127.0.0.1')).url;
  await hub.startBackground();
  return { hub, url, config, stop: () => hub.stop() };
}

// ---- hubs as child processes ------------------------------------------------------------------

export interface ChildHub {
  name: string;
  proc: ChildProcess;
  logFile: string;
  /** Resolves once the process says it started. */
  started: Promise<void>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * `node --import tsx src/main.ts <role>`: one process, so SIGKILL kills exactly the hub (npx or
 * the tsx CLI would put a parent in between that dies alone).
 */
export function spawnHub(o: { name: string; role: HubRole; configFile: string; dir: string; databaseUrl?: string; redisUrl?: string; queuePrefix?: string }): ChildHub {
  const logFile = path.join(o.dir, `${o.name}.log`);
  const out = fs.openSync(logFile, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, HUB_CONFIG: o.configFile };
  for (const k of ['PORT', 'LOG_LEVEL', 'DATABASE_URL', 'REDIS_URL']) delete env[k];
  if (o.databaseUrl) env.DATABASE_URL = o.databaseUrl;
  if (o.redisUrl) env.REDIS_URL = o.redisUrl;
  const args = ['--import', 'tsx', 'src/main.ts', o.role, ...(o.queuePrefix ? ['--queue-prefix', o.queuePrefix] : [])];
  const startedAt = fs.statSync(logFile).size;
  const proc = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const started = (async () => {
    const until = Date.now() + 90_000;
    for (;;) {
      const text = fs.readFileSync(logFile, 'utf8').slice(startedAt);
      if (text.includes('collection-hub started')) return;
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${o.name} exited while starting:\n${text.slice(-3000)}`);
      if (Date.now() > until) throw new Error(`${o.name} did not start within 90 s:\n${text.slice(-3000)}`);
      await sleep(100);
    }
  })();
  started.catch(() => undefined);
  return {
    name: o.name,
    proc,
    logFile,
    started,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// ---- the PSP ----------------------------------------------------------------------------------

export interface FailedInvoice {
  invoice: string;
  customer: string;
  amount: number;
  facts: InvoiceFacts;
}

/** A small deterministic random source, so a failing run can be replayed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    shuffle<T>(xs: T[]): T[] {
      const out = xs.slice();
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    },
  };
}

/**
 * `customers` distinct customers, of which `twoInvoices` have 2 failed invoices and
 * `threeInvoices` have 3; shuffled so a customer's invoices arrive apart. The invoice number is
 * the invoice id and the customer name the customer id, so the agency's books can be read back.
 */
export function failedInvoices(o: { tag: string; customers: number; twoInvoices: number; threeInvoices: number; seed?: number }): FailedInvoice[] {
  const rnd = prng(o.seed ?? 7);
  const created = Math.floor(Date.now() / 1000) - 3600;
  const out: FailedInvoice[] = [];
  for (let c = 0; c < o.customers; c++) {
    const customer = `cus_${o.tag}${String(c).padStart(4, '0')}`;
    const n = c < o.threeInvoices ? 3 : c < o.threeInvoices + o.twoInvoices ? 2 : 1;
    for (let k = 0; k < n; k++) {
      const invoice = `in_${o.tag}${String(c).padStart(4, '0')}x${k}`;
      const amount = 1000 + rnd.int(90_000);
      out.push({
        invoice, customer, amount,
        facts: {
          invoice, customer, amount, number: invoice, customerName: customer, country: 'NL', created: created + out.length,
          nextPaymentAttempt: null, failureCode: 'insufficient_funds',
        },
      });
    }
  }
  return rnd.shuffle(out);
}

export interface PspStats {
  events: number;
  /** Deliveries made, the first ones included. */
  deliveries: number;
  /** Deliveries repeated because the one before was not answered 2xx. */
  retries: number;
  /** Answers by status; 'network' when no answer came (hub down, connection reset). */
  answers: Record<string, number>;
  /** 503 answers that carried a Retry-After header. */
  unavailableWithRetryAfter: number;
}

/**
 * Stripe's side: every event is delivered until the hub answers 2xx (Stripe re-signs each
 * attempt), `concurrency` at a time. `onAck` sees each event once it is acknowledged.
 */
export class Psp {
  readonly stats: PspStats = { events: 0, deliveries: 0, retries: 0, answers: {}, unavailableWithRetryAfter: 0 };
  /** Ids of the events the hub answered 2xx, with when. */
  readonly acked = new Map<string, number>();

  constructor(
    private readonly hubUrl: () => string,
    private readonly opts: { retryMs?: number; timeoutMs?: number; giveUpAfterMs?: number } = {},
  ) {}

  private count(k: string) {
    this.stats.answers[k] = (this.stats.answers[k] ?? 0) + 1;
  }

  /** One delivery attempt: the status, or null when no answer came. */
  async deliverOnce(event: unknown, merchant: 'acme' = 'acme'): Promise<number | null> {
    const { body, header } = signStripe(event, SECRETS.stripe[merchant]);
    this.stats.deliveries++;
    try {
      const r = await fetch(`${this.hubUrl()}/v1/webhooks/stripe/${merchant}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'stripe-signature': header },
        body,
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
      await r.arrayBuffer().catch(() => undefined);
      this.count(String(r.status));
      if (r.status === 503 && r.headers.get('retry-after')) this.stats.unavailableWithRetryAfter++;
      const id = (event as { id?: string }).id;
      if (r.status >= 200 && r.status < 300 && id) this.acked.set(id, Date.now());
      return r.status;
    } catch {
      this.count('network');
      return null;
    }
  }

  /** Deliver until 2xx; returns the number of attempts. */
  async deliver(event: unknown): Promise<number> {
    this.stats.events++;
    const until = Date.now() + (this.opts.giveUpAfterMs ?? 120_000);
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) this.stats.retries++;
      const status = await this.deliverOnce(event);
      if (status !== null && status >= 200 && status < 300) return attempt;
      if (status !== null && status >= 400 && status < 500 && status !== 408 && status !== 429) throw new Error(`the hub refused an event with ${status}`);
      if (Date.now() > until) throw new Error('the PSP gave up: an event was never acknowledged');
      await sleep((this.opts.retryMs ?? 150) * (0.5 + Math.random()));
    }
  }

  async stream<T>(items: T[], toEvent: (item: T) => unknown, concurrency: number, onAck?: (item: T, index: number) => void | Promise<void>): Promise<void> {
    let next = 0;
    let acked = 0;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++];
        await this.deliver(toEvent(item));
        await onAck?.(item, acked++);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }
}

export const paymentFailedEvent = (f: FailedInvoice) => stripeEvents.paymentFailed(f.facts);

// ---- what the agency received -----------------------------------------------------------------

export interface AgencyBooks {
  cases: number;
  claims: number;
  /** POST /v1/cases answered 201 by doing it (not replayed): each is a case created. */
  casesCreated: number;
  claimsAdded: number;
  /** Calls answered from the agency's idempotency store: a repeat the key made harmless. */
  idempotentReplays: number;
  /** Invoices sent but not at the agency. */
  lost: string[];
  /** Invoices at the agency in more than one claim. */
  duplicatedInvoices: string[];
  /** Customers with more than one case. */
  customersWithTwoCases: string[];
  /** Idempotency keys that made the agency act more than once. */
  keysActedTwice: string[];
  /** A claim of a customer on another customer's case. */
  misfiled: string[];
}

export function readAgencyBooks(sim: AgencySimulator, sent: FailedInvoice[]): AgencyBooks {
  const cases = sim.cases();
  const byInvoice = new Map<string, number>();
  const casesByCustomer = new Map<string, number>();
  const misfiled: string[] = [];
  const customerOf = new Map(sent.map((f) => [f.invoice, f.customer]));
  for (const c of cases) {
    casesByCustomer.set(c.debtor.name, (casesByCustomer.get(c.debtor.name) ?? 0) + 1);
    for (const k of c.claims) {
      const inv = k.number ?? '?';
      byInvoice.set(inv, (byInvoice.get(inv) ?? 0) + 1);
      if (customerOf.get(inv) !== c.debtor.name) misfiled.push(inv);
    }
  }
  const reqs = sim.requests();
  const acted = new Map<string, number>();
  let casesCreated = 0;
  let claimsAdded = 0;
  let idempotentReplays = 0;
  for (const r of reqs) {
    if (r.method !== 'POST') continue;
    if (r.replayed) idempotentReplays++;
    if (r.status !== null && r.status >= 200 && r.status < 300 && !r.replayed) {
      acted.set(r.idempotencyKey ?? '', (acted.get(r.idempotencyKey ?? '') ?? 0) + 1);
      if (r.path === '/v1/cases') casesCreated++;
      else if (/\/claims$/.test(r.path)) claimsAdded++;
    } else if (r.fault === 'timeout' && r.status === null && !r.replayed) {
      // A timed-out call was still carried out (the answer was lost): it counts as acting.
      acted.set(r.idempotencyKey ?? '', (acted.get(r.idempotencyKey ?? '') ?? 0) + 1);
    }
  }
  return {
    cases: cases.length,
    claims: cases.reduce((n, c) => n + c.claims.length, 0),
    casesCreated,
    claimsAdded,
    idempotentReplays,
    lost: sent.filter((f) => !byInvoice.has(f.invoice)).map((f) => f.invoice),
    duplicatedInvoices: [...byInvoice].filter(([, n]) => n > 1).map(([i]) => i),
    customersWithTwoCases: [...casesByCustomer].filter(([, n]) => n > 1).map(([c]) => c),
    keysActedTwice: [...acted].filter(([, n]) => n > 1).map(([k]) => k),
    misfiled,
  };
}

/** Wait until every sent invoice is in a claim at the agency (or time out with what is missing). */
export async function waitForAgency(sim: AgencySimulator, sent: FailedInvoice[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const books = readAgencyBooks(sim, sent);
    if (books.lost.length === 0) return;
    if (Date.now() > until) throw new Error(`${books.lost.length} of ${sent.length} invoices never reached the agency, e.g. ${books.lost.slice(0, 5).join(', ')}`);
    await sleep(200);
  }
}

/** Wait until the outbox owes nothing (every row done or cancelled); the rows still owed otherwise. */
export async function waitForOutboxSettled(db: Pick<Database, 'query'>, timeoutMs: number): Promise<Record<string, unknown>[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const open = (await db.query(`SELECT id, kind, lane, status, attempts, next_attempt_at, locked_until, last_error FROM outbox WHERE status NOT IN ('done', 'cancelled') ORDER BY id LIMIT 20`)).rows;
    if (open.length === 0 || Date.now() > until) return open;
    await sleep(200);
  }
}

/**
 * The same through the merchant API, for a hub in another process (an embedded hub's data
 * directory cannot be opened beside it): agency calls pending or in flight, until there are none.
 */
export async function waitForNothingOwed(hubUrl: string, timeoutMs: number): Promise<unknown[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const owed: unknown[] = [];
    try {
      for (const status of ['pending', 'in_flight']) {
        const r = await fetch(`${hubUrl}/v1/deliveries?status=${status}&scope=all&limit=500`, { headers: { authorization: `Bearer ${merchantToken('acme')}` } });
        owed.push(...((await r.json()) as { data: unknown[] }).data);
      }
      if (owed.length === 0 || Date.now() > until) return owed;
    } catch (err) {
      if (Date.now() > until) return [String(err)];
    }
    await sleep(250);
  }
}

export function merchantToken(merchantId = 'acme'): string {
  return issueMerchantToken({ hubId: 'collection-hub', secret: SECRETS.merchantToken, merchantId, ttlSeconds: 600 });
}

export { freePort, SECRETS };
