/**
 * Guarantee 2 — Redis loss (production mode: an api hub and a worker hub on PostgreSQL, BullMQ
 * on the machine's Redis under a prefix of this run). Mid-stream every BullMQ key of the run is
 * deleted (SCAN + DEL on the prefix: what a FLUSHALL does to us, without touching anyone else's
 * keys), and later Redis "restarts": the hub's connections are cut and refused for a while (a
 * TCP proxy in between) and it comes back empty. The outbox is the truth, so the reconciler
 * re-enqueues what the queue lost: nothing lost, nothing twice.
 */
import { createPostgres } from '../../../src/store/postgres';
import { postgresAvailable, redisAvailable, REDIS_URL } from '../../support/services';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy';
import {
  failedInvoices, freePort, openServices, paymentFailedEvent, Psp, readAgencyBooks, sleep, startHub, startSim, waitForAgency, waitForOutboxSettled,
  type InProcessHub, type Services,
} from './harness';
import { recordFigures } from './figures';
import type { AgencySimulator } from '../../../sim/agency-sim/simulator';

describe('Redis loss (production mode)', () => {
  let available = true;
  let services: Services;
  let proxy: TcpProxy;
  let sim: AgencySimulator;
  const hubs: InProcessHub[] = [];

  beforeAll(async () => {
    available = (await postgresAvailable()) && (await redisAvailable());
    if (!available) return;
    services = await openServices();
    const u = new URL(REDIS_URL);
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 6379) });
  }, 30_000);

  afterAll(async () => {
    for (const h of hubs) await h.stop().catch(() => undefined);
    await sim?.stop();
    await proxy?.close();
    await services?.cleanup();
  }, 30_000);

  it('re-enqueues from the outbox after a flush and a restart of Redis: nothing lost, nothing twice', async () => {
    if (!available) return;
    const hubPort = await freePort();
    ({ sim } = await startSim(hubPort, { latencyMs: 10 }));
    const common = { hubPort, partnerUrl: sim.url!, databaseUrl: services.databaseUrl, redisUrl: proxy.via(REDIS_URL), queuePrefix: services.prefix, delivery: { leaseSeconds: 5 } };
    const api = await startHub({ ...common, role: 'api' });
    hubs.push(api);
    const worker = await startHub({ ...common, role: 'worker' });
    hubs.push(worker);

    const invoices = failedInvoices({ tag: `r${Date.now().toString(36)}`, customers: 120, twoInvoices: 20, threeInvoices: 10 });
    const psp = new Psp(() => api.url!, { retryMs: 100 });
    const figures = { flushes: 0, keysDeleted: 0, restarts: 0, restartMs: 0, ackedWhileRedisDown: 0, readyzWhileRedisDown: 0 };
    let redisDown = false;
    const faults: Promise<void>[] = [];

    const flush = async () => {
      figures.flushes++;
      figures.keysDeleted += await services.flushQueue();
    };
    const restartRedis = async () => {
      // Connections dropped and refused, then an empty Redis (ours keeps nothing on disk).
      await proxy.cut();
      redisDown = true;
      figures.restarts++;
      const down = Date.now();
      figures.keysDeleted += await services.flushQueue();
      await sleep(400);
      const ready = await fetch(`${api.url}/readyz`);
      figures.readyzWhileRedisDown = ready.status;
      await sleep(1100);
      redisDown = false;
      await proxy.restore();
      figures.restartMs = Date.now() - down;
    };

    await psp.stream(invoices, paymentFailedEvent, 6, (_f, i) => {
      if (redisDown) figures.ackedWhileRedisDown++;
      if (i + 1 === 60) faults.push(flush());
      if (i + 1 === 120) faults.push(restartRedis());
    });
    await Promise.all(faults);
    // And one more flush with the backlog of agency calls queued.
    await flush();

    await waitForAgency(sim, invoices, 60_000);
    await sleep(1500);
    const books = readAgencyBooks(sim, invoices);

    const db = createPostgres(services.databaseUrl);
    const owed = await waitForOutboxSettled(db, 15_000);
    const events = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM inbound_events`)).rows[0].n;
    await db.close();

    recordFigures('2-redis-loss-production', {
      events: invoices.length, ...figures, pspRetries: psp.stats.retries, agencyCases: books.cases, agencyClaims: books.claims,
      agencyIdempotentReplays: books.idempotentReplays, lost: books.lost.length,
      duplicated: books.duplicatedInvoices.length + books.customersWithTwoCases.length + books.keysActedTwice.length,
    });

    // The faults happened: keys were really there to lose, and Redis was really away.
    expect(figures.flushes).toBe(2);
    expect(figures.restarts).toBe(1);
    expect(figures.keysDeleted).toBeGreaterThan(0);
    // Ingress does not need Redis (the event is in the database before the 2xx); readiness says the queue is away.
    expect(figures.ackedWhileRedisDown).toBeGreaterThan(0);
    expect(figures.readyzWhileRedisDown).toBe(503);
    expect(events).toBe(invoices.length);
    expect(books.lost).toEqual([]);
    expect(books.duplicatedInvoices).toEqual([]);
    expect(books.customersWithTwoCases).toEqual([]);
    expect(books.keysActedTwice).toEqual([]);
    expect(books.cases).toBe(120);
    expect(books.claims).toBe(invoices.length);
    expect(owed).toEqual([]);
  }, 120_000);
});
