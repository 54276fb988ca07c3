/**
 * Guarantee 3 — database outage (production mode: the hub on PostgreSQL through a TCP proxy,
 * BullMQ on Redis). The proxy is cut (live connections reset, new ones refused, as from a
 * stopped server) twice: in the middle of a webhook stream, and while the backlog of agency
 * calls is being delivered; the machine's PostgreSQL itself is never touched. While it is away
 * ingress answers 503 with Retry-After (the PSP retries), /readyz answers 503, and no event is
 * acknowledged that is not stored. Once it is back, work resumes by itself, without a restart
 * and long before any lease runs out (the lease is 120 s here).
 *
 * (Embedded mode has no such outage: PGlite lives in the hub's own process, so "the database is
 * down" is "the hub is down" — guarantee 1.)
 */
import { createPostgres } from '../../../src/store/postgres';
import { postgresAvailable, redisAvailable } from '../../support/services';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy';
import {
  failedInvoices, freePort, openServices, paymentFailedEvent, Psp, readAgencyBooks, sleep, startHub, startSim, waitForAgency, waitForOutboxSettled,
  type InProcessHub, type Services,
} from './harness';
import { recordFigures } from './figures';
import type { AgencySimulator } from '../../../sim/agency-sim/simulator';

describe('database outage (production mode)', () => {
  let available = true;
  let services: Services;
  let proxy: TcpProxy;
  let sim: AgencySimulator;
  let hub: InProcessHub | undefined;

  beforeAll(async () => {
    available = (await postgresAvailable()) && (await redisAvailable());
    if (!available) return;
    services = await openServices();
    const u = new URL(services.databaseUrl);
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) });
  }, 30_000);

  afterAll(async () => {
    await hub?.stop().catch(() => undefined);
    await sim?.stop();
    await proxy?.close();
    await services?.cleanup();
  }, 30_000);

  it('answers 503 while PostgreSQL is away, acknowledges only what it stored, and resumes by itself', async () => {
    if (!available) return;
    const hubPort = await freePort();
    ({ sim } = await startSim(hubPort, { latencyMs: 20 }));
    hub = await startHub({
      hubPort, partnerUrl: sim.url!, databaseUrl: proxy.via(services.databaseUrl), redisUrl: services.redisUrl, queuePrefix: services.prefix,
      // A lease far longer than the test: recovery must not wait for it.
      delivery: { leaseSeconds: 120 },
    });

    const invoices = failedInvoices({ tag: `d${Date.now().toString(36)}`, customers: 120, twoInvoices: 20, threeInvoices: 5 });
    const psp = new Psp(() => hub!.url!, { retryMs: 150 });
    const cuts: { from: number; to: number; readyz: number; readyzBody: any }[] = [];
    let ackedDuringCut = 0;

    const outage = async (ms: number) => {
      const from = Date.now();
      await proxy.cut();
      await sleep(Math.min(400, ms / 2));
      const r = await fetch(`${hub!.url}/readyz`);
      const readyzBody = await r.json();
      await sleep(ms - Math.min(400, ms / 2));
      await proxy.restore();
      cuts.push({ from, to: Date.now(), readyz: r.status, readyzBody });
    };

    const faults: Promise<void>[] = [];
    await psp.stream(invoices, paymentFailedEvent, 6, (_f, i) => {
      if (proxy.isCut) ackedDuringCut++;
      if (i + 1 === 50) faults.push(outage(2500));
    });
    await Promise.all(faults);
    // Again while the agency calls are under way (rows in flight when it goes).
    await sleep(150);
    const inFlightAtSecondCut = Number((await hub.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE status = 'in_flight'`)).rows[0].n);
    await outage(2000);
    const restoredAt = Date.now();

    try {
      await waitForAgency(sim, invoices, 40_000);
    } catch (err) {
      // Say where the missing invoices' work is stuck (the outbox by kind and status, leases included).
      const outbox = await hub.hub.ctx.db.query(
        `SELECT kind, status, count(*)::int AS n, min(locked_until) AS lease, max(attempts) AS attempts, max(last_error) AS error FROM outbox GROUP BY 1, 2 ORDER BY 1, 2`,
      ).catch((e: Error) => ({ rows: [e.message] }));
      throw new Error(`${(err as Error).message}; the outbox now (${new Date().toISOString()}): ${JSON.stringify(outbox.rows)}`);
    }
    const recoveredInMs = Date.now() - restoredAt;
    await sleep(1000);
    const books = readAgencyBooks(sim, invoices);

    const db = createPostgres(services.databaseUrl);
    const owed = await waitForOutboxSettled(db, 15_000);
    const storedIds = new Set((await db.query<{ provider_event_id: string }>(`SELECT provider_event_id FROM inbound_events`)).rows.map((r) => r.provider_event_id));
    await db.close();
    const ackedNotStored = [...psp.acked.keys()].filter((id) => !storedIds.has(id));

    recordFigures('3-database-outage-production', {
      events: invoices.length, outages: cuts.length, outageMs: cuts.map((c) => c.to - c.from), answers: psp.stats.answers,
      unavailableWithRetryAfter: psp.stats.unavailableWithRetryAfter, pspRetries: psp.stats.retries, inFlightAtSecondCut,
      recoveredInMs, ackedNotStored: ackedNotStored.length, lost: books.lost.length,
      duplicated: books.duplicatedInvoices.length + books.customersWithTwoCases.length + books.keysActedTwice.length,
      agencyIdempotentReplays: books.idempotentReplays,
    });

    // While it was away: 503 with Retry-After to the PSP, and not ready.
    expect(psp.stats.answers['503']).toBeGreaterThan(0);
    expect(psp.stats.unavailableWithRetryAfter).toBe(psp.stats.answers['503']);
    expect(psp.stats.answers['500'] ?? 0).toBe(0);
    for (const c of cuts) {
      expect(c.readyz).toBe(503);
      expect(c.readyzBody.checks.database).toMatch(/unavailable/);
    }
    // Nothing acknowledged that was not stored; every event in the end.
    expect(ackedNotStored).toEqual([]);
    expect(psp.acked.size).toBe(invoices.length);
    expect(storedIds.size).toBe(invoices.length);
    // Work resumed by itself, well before the 120 s lease of the rows it had in flight.
    expect(books.lost).toEqual([]);
    expect(recoveredInMs).toBeLessThan(40_000);
    expect(owed).toEqual([]);
    expect(books.duplicatedInvoices).toEqual([]);
    expect(books.customersWithTwoCases).toEqual([]);
    expect(books.keysActedTwice).toEqual([]);
    expect(books.cases).toBe(120);
    // And it is ready again.
    expect((await fetch(`${hub.url}/readyz`)).status).toBe(200);
    void ackedDuringCut;
  }, 120_000);
});
