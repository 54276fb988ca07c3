/**
 * A hub stopped with work still owed, and a new hub over the same database, in both run modes:
 * embedded (PGlite in a data directory, in-process queue) and services (PostgreSQL, BullMQ on
 * Redis). The outbox is the truth, so the second hub finishes what the first could not, and
 * the agency sees the case exactly once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { parseConfig, type HubConfig } from '../../src/config/load';
import { createHub, type Hub } from '../../src/hub';
import { createLogger } from '../../src/observability/logger';
import { createAgencySimulator, type AgencySimulator } from '../../sim/agency-sim/simulator';
import { signStripe, stripeEvents } from '../../sim/psp/stripe-events';
import { createTestDatabase, REDIS_URL, uniquePrefix, waitFor } from '../support/services';
import { freePort, SECRETS, testConfigYaml } from '../support/stack';
import { BACKENDS, deletePrefixKeys, sleep, type Backend } from './backends';

interface OutboxView {
  id: number;
  status: string;
  attempts: number;
  case_id: string | null;
  last_status: number | null;
}

describe.each<Backend>(BACKENDS)('hub restart with work pending ($name)', (backend) => {
  let available = true;
  let sim: AgencySimulator | undefined;
  const hubs: Hub[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    available = await backend.available();
  }, 30_000);

  afterAll(async () => {
    for (const h of hubs) await h.stop().catch(() => undefined);
    if (sim) await sim.stop();
    for (const c of cleanups.reverse()) await c();
  }, 30_000);

  it('a second hub over the same database delivers the case the first could not, exactly once', async () => {
    if (!available) return;
    const hubPort = await freePort();
    sim = createAgencySimulator({
      partnerId: 'refagency',
      hubId: 'collection-hub',
      hubUrl: `http://127.0.0.1:${hubPort}`,
      inSecret: SECRETS.hubToAgency,
      outSecret: SECRETS.agencyToHub,
      stepMs: 60_000,
      pushBackoffMs: 50,
    });
    const { url: simUrl } = await sim.start(0, '127.0.0.1');
    sim.pause();

    const env: Record<string, string> = {};
    let queuePrefix: string | undefined;
    let dataDir: string | undefined;
    if (backend.mode === 'services') {
      const pg = await createTestDatabase();
      cleanups.push(pg.drop);
      env.DATABASE_URL = pg.url;
      env.REDIS_URL = REDIS_URL;
      queuePrefix = uniquePrefix();
      const prefix = queuePrefix;
      cleanups.push(async () => {
        const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 2 });
        redis.on('error', () => undefined);
        try {
          await deletePrefixKeys(redis, prefix);
        } finally {
          redis.disconnect();
        }
      });
    } else {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-restart-'));
      const dir = dataDir;
      cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    const config: HubConfig = parseConfig(testConfigYaml({ simUrl, hubPort, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45 }), env);
    // Enough attempts that the first hub never dead-letters the row while the agency is down.
    Object.assign(config.delivery, { maxAttempts: 1000, baseDelayMs: 100, maxDelayMs: 1000, reconcileEverySeconds: 1 });
    if (dataDir) config.hub.dataDir = dataDir;

    // Each hub opens its own database from the config (PGlite under dataDir, or DATABASE_URL) and closes it on stop.
    const openHub = async () => {
      const hub = await createHub({ config, role: 'all', queuePrefix, logger: createLogger({ silent: true }) });
      hubs.push(hub);
      await hub.listen(hubPort, '127.0.0.1');
      await hub.startBackground();
      return hub;
    };
    const createCaseRow = async (hub: Hub) =>
      (
        await hub.ctx.db.query<OutboxView>(`SELECT id, status, attempts, case_id, last_status FROM outbox WHERE kind = 'agency.create_case' ORDER BY id`)
      ).rows;
    const caseCalls = () => sim!.requests().filter((r) => r.method === 'POST' && r.path === '/v1/cases');

    // --- first hub: the agency answers 503 to everything -----------------------------------------
    sim.setFaults({ errorRate: 1 });
    const first = await openHub();
    expect(first.ctx.db.kind).toBe(backend.mode === 'embedded' ? 'pglite' : 'postgres');
    const now = Math.floor(Date.now() / 1000);
    const tag = Date.now().toString(36);
    const facts = { invoice: `in_rst${tag}`, customer: `cus_rst${tag}`, amount: 5300, created: now - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: 'Piet Restart', country: 'NL' };
    const { body, header } = signStripe(stripeEvents.paymentFailed(facts), SECRETS.stripe.acme);
    const answer = await fetch(`http://127.0.0.1:${hubPort}/v1/webhooks/stripe/acme`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body });
    expect(answer.status).toBe(200);

    const pending = await waitFor(
      async () => {
        const rows = await createCaseRow(first);
        return rows.length === 1 && rows[0].attempts >= 2 && rows[0].status !== 'in_flight' && caseCalls().length >= 2 ? rows[0] : null;
      },
      15_000,
      50,
      'the first hub to fail delivering the case twice',
    );
    expect(pending).toMatchObject({ status: 'pending', last_status: 503 });
    expect(pending.case_id).toMatch(/.+/);
    expect(caseCalls().every((r) => r.status === 503 && r.fault === 'error')).toBe(true);
    expect(sim.cases()).toHaveLength(0);

    await first.stop();
    // Stopped means stopped: no more calls reach the agency from the first hub.
    const callsAtStop = caseCalls().length;
    await sleep(1500);
    expect(caseCalls()).toHaveLength(callsAtStop);

    // --- second hub over the same database, agency healthy again -------------------------------
    sim.setFaults({ errorRate: 0 });
    const second = await openHub();
    const delivered = await waitFor(
      async () => {
        const rows = await createCaseRow(second);
        return rows.length === 1 && rows[0].status === 'done' ? rows[0] : null;
      },
      15_000,
      50,
      'the second hub to deliver the case',
    );
    expect(delivered).toMatchObject({ id: pending.id, case_id: pending.case_id, last_status: 201 });

    const atAgency = sim.cases().filter((c) => c.reference === pending.case_id);
    expect(atAgency).toHaveLength(1);
    expect(atAgency[0].claims).toHaveLength(1);
    expect(atAgency[0].claims[0].principal).toEqual({ value: 5300, currency: 'EUR' });
    expect(sim.cases()).toHaveLength(1);
    // Give a late duplicate (a leftover queue job, the reconciler) the chance to show up: it must not.
    await sleep(1500);
    expect(caseCalls().filter((r) => r.status === 201)).toHaveLength(1);
    expect(sim.cases()).toHaveLength(1);

    const stored = await second.ctx.db.query<{ status: string; partner_ref: string | null }>('SELECT status, partner_ref FROM cases WHERE id = $1', [pending.case_id]);
    expect(stored.rows).toEqual([{ status: expect.any(String), partner_ref: atAgency[0].id }]);
    const inv = await second.ctx.db.query<{ status: string }>('SELECT status FROM invoices WHERE provider_ref = $1', [facts.invoice]);
    expect(inv.rows).toEqual([{ status: 'submitted' }]);
    const notDone = await second.ctx.db.query<{ kind: string; status: string }>(`SELECT kind, status FROM outbox WHERE status NOT IN ('done', 'cancelled')`);
    expect(notDone.rows).toEqual([]);
  }, 30_000);
});
