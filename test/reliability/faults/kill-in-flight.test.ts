/**
 * Issue 14 — a crash must not park work for the whole lease. Tried as an operator would: production
 * mode (an `api` and a `worker` process on PostgreSQL and BullMQ) with the hub's DEFAULT delivery
 * settings (lease, heartbeat, reconcile period, backoff, the circuit breaker as it ships — nothing
 * here sets `leaseSeconds`), an agency that answers 20 % of its calls 503 and 5 % only after 3 s, a
 * PSP streaming failed invoices; mid-stream, while agency calls are in flight, the worker is
 * SIGKILLed and restarted at once.
 *
 * Checked: every agency call in flight at the kill (seen at the agency without an answer yet, or
 * a row the dead worker held in flight) is made again within 30 s of the restart — with the old
 * 120 s lease it took two minutes; every failed invoice reaches the agency exactly once; and the
 * circuit of an agency failing a quarter of its calls never opens (degraded, not down).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../../src/config/load';
import { createPostgres } from '../../../src/store/postgres';
import { postgresAvailable, redisAvailable } from '../../support/services';
import {
  configYaml, failedInvoices, freePort, openServices, paymentFailedEvent, prng, Psp, readAgencyBooks, sleep, spawnHub, startAgencyFront, startSim, tempDir,
  waitForAgency, waitForNothingOwed, type ChildHub, type Services,
} from './harness';
import { recordFigures } from './figures';

/** 200 failed invoices of 150 customers (30 with two invoices, 10 with three). */
const INVOICES = { customers: 150, twoInvoices: 30, threeInvoices: 10 };
const KILL_AFTER_ACKS = 90;
const SLOW_MS = 3000;
/** Issue 14's target: every call in flight at the kill is retried within this long of the restart. */
const RETRY_WITHIN_MS = 30_000;

describe('kill in flight: a SIGKILLed worker parks no agency call for long (production mode, default lease)', () => {
  const children: ChildHub[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of children) await c.kill('SIGKILL').catch(() => undefined);
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }, 60_000);

  it('retries every call in flight at the kill within 30 s of the restart, and delivers each invoice once', async () => {
    // Skipped on a developer machine without them; under CI=true these throw, and the test fails.
    if (!((await postgresAvailable()) && (await redisAvailable()))) return;
    const dir = tempDir('hub-kill-in-flight-');
    let passed = false;
    cleanups.push(async () => (passed ? fs.rmSync(dir, { recursive: true, force: true }) : console.warn(`hub logs kept in ${dir}`)));
    const hubPort = await freePort();
    const { sim, url: simUrl } = await startSim(hubPort, { latencyMs: 15 });
    cleanups.push(() => sim.stop());

    // The flaky agency: 20 % of its calls answered 503 (no Retry-After), 5 % answered after 3 s.
    const front = await startAgencyFront(simUrl);
    cleanups.push(() => front.stop());
    const rnd = prng(14);
    front.setRule((req) => {
      if (req.method !== 'POST') return undefined;
      const r = rnd.next();
      if (r < 0.2) return { status: 503, body: { error: { code: 'unavailable', message: 'the agency is busy; try again' } } };
      if (r < 0.25) return { forwardAfterMs: SLOW_MS };
      return undefined;
    });

    const services: Services = await openServices();
    cleanups.push(services.cleanup);
    const configFile = path.join(dir, 'hub.yaml');
    // The hub's own delivery defaults, the partner's default 10 s timeout: the slow answers are slow, not failures.
    const yaml = configYaml({ hubPort, partnerUrl: front.url, logLevel: 'info', deliveryDefaults: true, partnerTimeoutMs: 10_000 });
    expect(yaml).not.toMatch(/leaseSeconds|reconcileEverySeconds/);
    fs.writeFileSync(configFile, yaml);
    const { delivery } = parseConfig(yaml, {});

    const spawnRole = (name: string, role: 'api' | 'worker') => {
      const c = spawnHub({ name, role, configFile, dir, databaseUrl: services.databaseUrl, redisUrl: services.redisUrl, queuePrefix: services.prefix });
      children.push(c);
      return c;
    };
    const api = spawnRole('api', 'api');
    let worker = spawnRole('worker', 'worker');
    await Promise.all([api.started, worker.started]);
    const db = createPostgres(services.databaseUrl, { max: 2 });
    cleanups.push(() => db.close());

    const posts = () => front.log.filter((e) => e.method === 'POST' && e.idempotencyKey);
    const underWay = (now: number) => posts().filter((e) => e.doneAt === undefined && now - e.at > 200);
    /** The kill: when it was sent, when the process was gone, when its successor was started and had started. */
    const run: { kill?: { sentAt: number; exitedAt: number; restartAt: number; rowsInFlight: { idempotency_key: string; kind: string }[]; startedAt?: number }; killing?: Promise<void> } = {};

    /** Once slow calls are under way at the agency (two if they come within 15 s), SIGKILL the worker and start it again at once. */
    const killInFlight = async () => {
      const from = Date.now();
      const wanted = () => (Date.now() - from < 15_000 ? 2 : 1);
      while (underWay(Date.now()).length < wanted() && Date.now() - from < 30_000) await sleep(5);
      const sentAt = Date.now();
      await worker.kill('SIGKILL');
      const exitedAt = Date.now();
      // What the dead worker held: only workers take rows (the api process runs none).
      const rowsInFlight = (await db.query<{ idempotency_key: string; kind: string }>(`SELECT idempotency_key, kind FROM outbox WHERE status = 'in_flight' AND lane LIKE 'partner.%'`)).rows;
      const restartAt = Date.now();
      worker = spawnRole('worker', 'worker');
      run.kill = { sentAt, exitedAt, restartAt, rowsInFlight };
      await worker.started;
      run.kill.startedAt = Date.now();
    };

    const invoices = failedInvoices({ tag: `f${Date.now().toString(36)}`, ...INVOICES });
    const psp = new Psp(() => `http://127.0.0.1:${hubPort}`, { retryMs: 150 });
    const started = Date.now();
    await psp.stream(invoices, paymentFailedEvent, 8, (_f, i) => {
      // Not awaited: the PSP keeps sending (the api is up) while the worker dies and restarts.
      if (i + 1 === KILL_AFTER_ACKS) run.killing = killInFlight();
    });
    await run.killing;
    const k = run.kill!;

    await waitForAgency(sim, invoices, 180_000);
    await sim.pushesSettled();
    let owed = await waitForNothingOwed(`http://127.0.0.1:${hubPort}`, 90_000);
    // A late duplicate (a stale queue job, a lease running out) gets its chance to show up.
    await sleep(1500);
    await sim.pushesSettled();
    owed = [...owed, ...(await waitForNothingOwed(`http://127.0.0.1:${hubPort}`, 60_000))];
    const books = readAgencyBooks(sim, invoices);
    const elapsedMs = Date.now() - started;
    for (const p of [api, worker]) await p.kill('SIGTERM');

    // In flight at the kill: calls the agency had received and not yet answered, and the rows the
    // dead worker held (a call about to be made, or answered but not yet recorded).
    const callsInFlight = posts().filter((e) => e.at <= k.sentAt && (e.doneAt === undefined || e.doneAt >= k.sentAt));
    const keys = new Set([...callsInFlight.map((e) => e.idempotencyKey!), ...k.rowsInFlight.map((r) => r.idempotency_key)]);
    const retries = [...keys].map((key) => {
      const next = posts().find((e) => e.idempotencyKey === key && e.at > k.exitedAt);
      return { key, retryAfterRestartMs: next ? next.at - k.restartAt : null };
    });
    const delays = retries.map((r) => r.retryAfterRestartMs).filter((d): d is number => d !== null);
    const worst = delays.length ? Math.max(...delays) : null;
    const workerLog = fs.readFileSync(worker.logFile, 'utf8');
    const circuitOpened = (workerLog.match(/circuit open for partner/g) ?? []).length;
    const answered503 = posts().filter((e) => e.status === 503 && e.answeredBy === 'front').length;
    const slow = posts().filter((e) => e.answeredBy === 'forwarded' && e.doneAt !== undefined && e.doneAt - e.at >= SLOW_MS).length;

    recordFigures('14-kill-in-flight', {
      mode: 'production', leaseSeconds: delivery.leaseSeconds, reconcileEverySeconds: delivery.reconcileEverySeconds, events: invoices.length, customers: INVOICES.customers,
      agencyCalls: posts().length, answered503, answeredSlowly: slow, callsInFlightAtKill: callsInFlight.length, rowsInFlightAtKill: k.rowsInFlight.length,
      restartToStartedMs: (k.startedAt ?? k.restartAt) - k.restartAt, retryDelaysAfterRestartMs: delays.sort((a, b) => a - b), worstRetryAfterRestartMs: worst,
      neverRetried: retries.filter((r) => r.retryAfterRestartMs === null).length, circuitOpened,
      agencyCases: books.cases, agencyClaims: books.claims, agencyIdempotentReplays: books.idempotentReplays, lost: books.lost.length,
      duplicated: books.duplicatedInvoices.length + books.customersWithTwoCases.length + books.keysActedTwice.length, elapsedMs,
    });

    // The faults were real: calls failed and were slow, and some were under way when the worker died.
    expect(answered503).toBeGreaterThan(0);
    expect(slow).toBeGreaterThan(0);
    expect(callsInFlight.length).toBeGreaterThanOrEqual(1);
    // Issue 14: each of them was made again within 30 s of the restart, not after a 120 s lease.
    expect(retries.filter((r) => r.retryAfterRestartMs === null)).toEqual([]);
    if (worst === null || worst > RETRY_WITHIN_MS) {
      throw new Error(`worst retry ${worst} ms after the restart, over ${RETRY_WITHIN_MS} ms (lease ${delivery.leaseSeconds} s; the restarted worker took ${(k.startedAt ?? k.restartAt) - k.restartAt} ms to start): ${JSON.stringify(retries)}`);
    }
    // Exactly once at the agency.
    expect(books.lost).toEqual([]);
    expect(books.duplicatedInvoices).toEqual([]);
    expect(books.customersWithTwoCases).toEqual([]);
    expect(books.keysActedTwice).toEqual([]);
    expect(books.misfiled).toEqual([]);
    expect(books.cases).toBe(INVOICES.customers);
    expect(books.claims).toBe(invoices.length);
    expect(books.casesCreated).toBe(INVOICES.customers);
    expect(owed).toEqual([]);
    // A partner failing a quarter of its calls is degraded, not down: its circuit never opened.
    expect(circuitOpened).toBe(0);
    passed = true;
  }, 420_000);
});
