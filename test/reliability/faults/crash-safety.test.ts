/**
 * Guarantee 1 — crash safety. The hub runs as child processes (embedded: one `all` process on a
 * PGlite data directory; production: an `api` and two `worker` processes on PostgreSQL and
 * BullMQ), a PSP streams a few hundred signed Stripe failure webhooks and retries every one not
 * answered 2xx, and the hub (in production also a worker) is SIGKILLed mid-stream and once more
 * while the backlog is being delivered, then restarted on the same port and database. In the
 * end every failed invoice reached the agency exactly once, no customer has two cases, and the
 * agency never acted twice on one idempotency key.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createPglite } from '../../../src/store/pglite';
import { createPostgres } from '../../../src/store/postgres';
import type { Database } from '../../../src/store/db';
import { postgresAvailable, redisAvailable } from '../../support/services';
import {
  configYaml, failedInvoices, freePort, openServices, paymentFailedEvent, Psp, readAgencyBooks, sleep, spawnHub, startSim, tempDir, waitForAgency, waitForNothingOwed,
  LONG, type ChildHub, type Services,
} from './harness';
import { recordFigures } from './figures';

type Mode = 'embedded' | 'production';

// 300 failed invoices by default; 1000 with FAULTS_LONG=1.
const INVOICES = LONG ? { customers: 760, twoInvoices: 160, threeInvoices: 40 } : { customers: 220, twoInvoices: 40, threeInvoices: 20 };

describe.each<Mode>(['embedded', 'production'])('crash safety: SIGKILL mid-stream (%s mode)', (mode) => {
  const children: ChildHub[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of children) await c.kill('SIGKILL').catch(() => undefined);
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }, 60_000);

  it('loses no event, delivers each failed invoice once and opens one case per customer', async () => {
    if (mode === 'production' && !((await postgresAvailable()) && (await redisAvailable()))) return;
    const dir = tempDir(`hub-crash-${mode}-`);
    let passed = false;
    // Kept when the test fails: the hub processes' logs are in it.
    cleanups.push(async () => (passed ? fs.rmSync(dir, { recursive: true, force: true }) : console.warn(`hub logs kept in ${dir}`)));
    const hubPort = await freePort();
    // A little agency latency so kills land while calls are in flight.
    const { sim, url: simUrl } = await startSim(hubPort, { latencyMs: 15 });
    cleanups.push(() => sim.stop());
    let services: Services | null = null;
    if (mode === 'production') {
      services = await openServices();
      cleanups.push(services.cleanup);
    }
    const configFile = path.join(dir, 'hub.yaml');
    fs.writeFileSync(configFile, configYaml({ hubPort, partnerUrl: simUrl, dataDir: mode === 'embedded' ? path.join(dir, 'data') : undefined, logLevel: 'info', delivery: { leaseSeconds: 3 } }));

    const spawnRole = (name: string, role: 'all' | 'api' | 'worker') => {
      const c = spawnHub({ name, role, configFile, dir, databaseUrl: services?.databaseUrl, redisUrl: services?.redisUrl, queuePrefix: services?.prefix });
      children.push(c);
      return c;
    };
    const procs = new Map<string, ChildHub>();
    const roles: Record<string, 'all' | 'api' | 'worker'> = mode === 'embedded' ? { hub: 'all' } : { api: 'api', 'worker-a': 'worker', 'worker-b': 'worker' };
    for (const [name, role] of Object.entries(roles)) procs.set(name, spawnRole(name, role));
    await Promise.all([...procs.values()].map((p) => p.started));

    let kills = 0;
    const restarts: Promise<void>[] = [];
    /** SIGKILL these processes and start them again on the same port and database at once. */
    const crash = async (names: string[]) => {
      await Promise.all(names.map((n) => procs.get(n)!.kill('SIGKILL')));
      kills += names.length;
      for (const n of names) {
        const c = spawnRole(n, roles[n]);
        procs.set(n, c);
        restarts.push(c.started);
      }
    };

    const invoices = failedInvoices({ tag: `k${mode[0]}${Date.now().toString(36)}`, ...INVOICES });
    // Who is killed after how many acknowledged events (then once more with the backlog in flight).
    const plan: Record<number, string[]> = LONG
      ? mode === 'embedded'
        ? { 150: ['hub'], 350: ['hub'], 550: ['hub'], 750: ['hub'] }
        : { 150: ['api', 'worker-a'], 350: ['worker-b'], 550: ['api', 'worker-a'], 750: ['api', 'worker-b'] }
      : mode === 'embedded'
        ? { 120: ['hub'] }
        : { 120: ['api', 'worker-a'] };
    const psp = new Psp(() => `http://127.0.0.1:${hubPort}`, { retryMs: 150 });
    const crashes: Promise<void>[] = [];
    const started = Date.now();
    await psp.stream(invoices, paymentFailedEvent, 8, (_f, i) => {
      const names = plan[i + 1];
      // Not awaited: the other senders keep going (and retrying) while the hub is down.
      if (names) crashes.push(crash(names));
    });
    await Promise.all(crashes);
    // Once more with every event acknowledged and the backlog of agency calls in flight.
    await sleep(300);
    await crash(mode === 'embedded' ? ['hub'] : ['worker-b']);
    await Promise.all(restarts);

    await waitForAgency(sim, invoices, 120_000);
    // Rows whose call went through just before a kill are still owed (in flight until their lease
    // runs out, then done by a replay the Idempotency-Key absorbs): wait until nothing is owed.
    // The agency's pushes of the new cases' status become work too (applying the update): let them land.
    await sim.pushesSettled();
    let owed = await waitForNothingOwed(`http://127.0.0.1:${hubPort}`, 60_000);
    // Give a late duplicate (a stale queue job, a lease running out) the chance to show up, and
    // anything it started the chance to finish before the processes are stopped.
    await sleep(1500);
    await sim.pushesSettled();
    owed = [...owed, ...(await waitForNothingOwed(`http://127.0.0.1:${hubPort}`, 60_000))];
    const books = readAgencyBooks(sim, invoices);
    const elapsedMs = Date.now() - started;
    for (const p of procs.values()) await p.kill('SIGTERM');

    // What the hub's own database says.
    const db: Database = mode === 'embedded' ? await createPglite(path.join(dir, 'data', 'pglite')) : createPostgres(services!.databaseUrl);
    let stored: { events: number; deliveries: number; casesPerCustomerOverOne: number; claimsPerInvoiceOverOne: number; outbox: Record<string, number>; invoicesNotSubmitted: number };
    try {
      const ev = (await db.query<{ n: number; d: number }>(`SELECT count(*)::int AS n, sum(deliveries)::int AS d FROM inbound_events`)).rows[0];
      const twoCases = (await db.query(`SELECT customer_id FROM cases GROUP BY customer_id HAVING count(*) > 1`)).rows.length;
      const twoClaims = (await db.query(`SELECT invoice_id FROM claims GROUP BY invoice_id HAVING count(*) > 1`)).rows.length;
      const outbox = Object.fromEntries((await db.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM outbox GROUP BY status`)).rows.map((r) => [r.status, r.n]));
      const notSubmitted = (await db.query(`SELECT id FROM invoices WHERE status <> 'submitted' OR case_id IS NULL`)).rows.length;
      stored = { events: ev.n, deliveries: ev.d, casesPerCustomerOverOne: twoCases, claimsPerInvoiceOverOne: twoClaims, outbox, invoicesNotSubmitted: notSubmitted };
    } finally {
      await db.close();
    }

    const figures = {
      mode, events: invoices.length, customers: INVOICES.customers, kills, pspDeliveries: psp.stats.deliveries, pspRetries: psp.stats.retries,
      answers: psp.stats.answers, duplicateWebhooksStored: stored.deliveries - stored.events, agencyCases: books.cases, agencyClaims: books.claims,
      agencyIdempotentReplays: books.idempotentReplays, lost: books.lost.length, duplicated: books.duplicatedInvoices.length + books.customersWithTwoCases.length + books.keysActedTwice.length,
      elapsedMs,
    };
    recordFigures(`1-crash-safety-${mode}`, figures);

    // The PSP was really cut off (retries happened) and the hub really died.
    expect(kills).toBe(Object.values(plan).flat().length + 1);
    expect(psp.stats.retries).toBeGreaterThan(0);
    // Nothing lost: every acknowledged event is stored once, every failed invoice is at the agency.
    expect(stored.events).toBe(invoices.length);
    expect(books.lost).toEqual([]);
    // Nothing twice: one claim per invoice, one case per customer, no key acted on twice.
    expect(books.duplicatedInvoices).toEqual([]);
    expect(books.customersWithTwoCases).toEqual([]);
    expect(books.keysActedTwice).toEqual([]);
    expect(books.misfiled).toEqual([]);
    expect(books.cases).toBe(INVOICES.customers);
    expect(books.claims).toBe(invoices.length);
    expect(books.casesCreated).toBe(INVOICES.customers);
    expect(stored.casesPerCustomerOverOne).toBe(0);
    expect(stored.claimsPerInvoiceOverOne).toBe(0);
    expect(stored.invoicesNotSubmitted).toBe(0);
    // And nothing left owed.
    expect(owed).toEqual([]);
    expect(Object.keys(stored.outbox).filter((s) => !['done', 'cancelled'].includes(s))).toEqual([]);
    passed = true;
  }, LONG ? 900_000 : 300_000);
});
