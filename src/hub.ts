/**
 * Assembles a hub from its config: database (PGlite or PostgreSQL), queue (in-process or
 * BullMQ), connectors, HTTP app, and the background loops (workers, reconciler, pulls).
 * One code path for both run modes; `role` decides what this process does.
 */
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HubConfig } from './config/load';
import type { Database } from './store/db';
import { createPglite } from './store/pglite';
import { createPostgres } from './store/postgres';
import { migrate } from './store/migrate';
import type { Dispatcher } from './queue/dispatcher';
import { createInProcessDispatcher } from './queue/in-process';
import { createBullmqDispatcher } from './queue/bullmq';
import { systemClock, type Clock } from './domain/clock';
import { createLogger, type Logger } from './observability/logger';
import { createMetrics } from './observability/metrics';
import { loadAgencyMapping, loadPspMapping } from './mappings/load';
import type { PspMapping } from './mappings/types';
import { agencyConnectors } from '../connectors/registry';
import { createHubSigner, type HubKey, type HubKeyAlg } from './auth/hub-signer';
import { keyEncryptionKey, loadHubKeys } from './auth/key-store';
import { makeCommit, type HubContext, type PartnerRuntime, type MerchantSettings } from './context';
import { createOutboxRunner, reconcileOnce, type OutboxRunner } from './outbox/runner';
import { HUB_STAGES } from './outbox/stages';
import { pullPartner } from './sync/partner-updates';
import { createApp } from './http/app';
import { createHttpServer, createMetricsApp, DEFAULT_HTTP_SETTINGS } from './http/server';
import { installDashboard } from './dashboard';
import { notifyFromHistory } from './notify/scanner';
import { createCommitGroup } from './outbox/commit-group';
import { scannerWake, type ScannerWake } from './notify/wake';
import { COUNTRY_RULES_FILE, loadCountryRules } from './policy/country-rules';
import { purgeExpired } from './privacy/retention';
import { sweepFinishedRows, vacuumEmbedded } from './outbox/sweep';
import { createIdentifierHasher } from './screening/identifiers';
import { backfillIdentifierHashes } from './screening/store';
import { notifyLanes } from './notify/kinds';
import { partnerLane } from './outbox/outbox';

export type HubRole = 'all' | 'api' | 'worker';

export interface HubOptions {
  config: HubConfig;
  role?: HubRole;
  clock?: Clock;
  logger?: Logger;
  /** Use this database instead of opening one (tests share one PGlite). */
  db?: Database;
  /** The country-rules data to validate at start-up (tests point it at a broken file); default the shipped one. */
  countryRulesFile?: string;
  /** BullMQ key prefix (tests isolate their runs). */
  queuePrefix?: string;
}

export interface Hub {
  ctx: HubContext;
  app: ReturnType<typeof createApp>;
  /** Start serving HTTP (roles all and api). */
  listen(port?: number, host?: string): Promise<{ port: number; url: string; metricsUrl?: string }>;
  /** Start workers, reconciler and pulls (roles all and worker). */
  startBackground(): Promise<void>;
  reconcileNow(): Promise<number>;
  pullNow(partnerId?: string): Promise<void>;
  /** Graceful stop: no new requests or jobs, wait for what is running, close connections. */
  stop(): Promise<void>;
}

/** The hub's signing key and the previous ones still published: from the config, else from the database (src/auth/key-store.ts). */
async function hubSigningKeys(db: Database, config: HubConfig, now: Date): Promise<{ key?: HubKey; previousKeys?: HubKey[] }> {
  if (config.hub.signingKey) return { key: config.hub.signingKey, previousKeys: config.hub.previousSigningKeys };
  const outbound = config.partners.find((p) => ['RS256', 'ES256'].includes(p.config?.auth?.outbound?.alg));
  if (!outbound) return {};
  const { current, previous } = await loadHubKeys(db, outbound.config.auth.outbound.alg as HubKeyAlg, now, keyEncryptionKey(config.hub.keyEncryptionKey));
  return { key: current, previousKeys: previous };
}

export async function createHub(opts: HubOptions): Promise<Hub> {
  const { config } = opts;
  // Country rules are data the hand-over check reads: a file it cannot read stops start-up here,
  // naming the file and the key, not at the first hand-over check (issue 12, hole 9).
  try {
    loadCountryRules(opts.countryRulesFile ?? COUNTRY_RULES_FILE);
  } catch (err) {
    throw new Error(`country rules: ${(err as Error).message} — the hub does not start with country rules it cannot read`);
  }
  const role = opts.role ?? 'all';
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger({ level: config.hub.logLevel });
  const metrics = createMetrics();

  const db = opts.db ?? (config.databaseUrl ? createPostgres(config.databaseUrl, { preparedStatements: config.databasePreparedStatements }) : await createPglite(path.resolve(config.hub.dataDir, 'pglite')));
  const ownsEmbeddedDb = !opts.db && !config.databaseUrl;
  await migrate(db);

  const dispatcher: Dispatcher = config.redisUrl
    ? createBullmqDispatcher(config.redisUrl, logger, { prefix: opts.queuePrefix })
    : createInProcessDispatcher(logger);
  if (!config.redisUrl && role !== 'all') {
    logger.warn(`role ${role} with the in-process queue: this process does all the work (set REDIS_URL to split roles)`);
  }

  const signer = createHubSigner({ hubId: config.hub.id, ...(await hubSigningKeys(db, config, clock.now())) });

  const pspMappings = new Map<string, PspMapping>();
  const merchants = new Map<string, MerchantSettings>();
  for (const m of config.merchants) {
    merchants.set(m.id, m);
    for (const provider of Object.keys(m.providers)) if (!pspMappings.has(provider)) pspMappings.set(provider, loadPspMapping(provider));
  }
  const partners = new Map<string, PartnerRuntime>();
  for (const p of config.partners) {
    const connector = agencyConnectors.get(p.connector)!;
    const mapping = loadAgencyMapping(p.connector);
    partners.set(p.id, { settings: p, mapping, client: connector.create({ partnerId: p.id, hubId: config.hub.id, config: p.config, mapping, signer }) });
  }

  const identifiers = createIdentifierHasher(config.hub.identifierHashSecret);
  const ctx: HubContext = { config, db, dispatcher, clock, logger, metrics, merchants, partners, pspMappings, signer, identifiers, commit: makeCommit(db, dispatcher, clock) };
  // Agency-call completions and agency pushes share transactions when they come together (issue 14).
  const shared = createCommitGroup({ db, dispatcher, now: () => clock.now() });
  ctx.commitShared = (fn) => shared.commit(fn);
  const app = createApp(ctx, [(a) => installDashboard(a, ctx)]);
  let server: http.Server | null = null;
  let metricsServer: http.Server | null = null;
  const timers: NodeJS.Timeout[] = [];
  let stopping = false;
  const pulling = new Set<string>();

  async function pullNow(partnerId?: string) {
    for (const id of partnerId ? [partnerId] : [...partners.keys()]) {
      if (pulling.has(id)) continue;
      pulling.add(id);
      try {
        const r = await pullPartner(ctx, id);
        if (r.fetched) logger.info('pulled partner updates', { partner: id, ...r });
      } catch (err) {
        logger.warn('pull failed; will try again', { partner: id, error: (err as Error).message });
      } finally {
        pulling.delete(id);
      }
    }
  }

  let runner: OutboxRunner | null = null;
  let scanner: ScannerWake | null = null;

  /** One pass of the retention purge; a failure is logged and tried again at the next pass. */
  async function purgeNow() {
    try {
      const purged = await db.tx((sql) => purgeExpired(sql, clock.now(), config.privacy));
      if (purged.inboundEvents || purged.exchanges || purged.partnerUpdates) logger.info('retention purge', { ...purged, retentionDays: config.privacy.retentionDays });
      return purged;
    } catch (err) {
      logger.warn('retention purge failed; will try again', { error: (err as Error).message });
      return null;
    }
  }

  /**
   * One pass of the outbox sweep (src/outbox/sweep.ts): finished rows past delivery.doneRetentionDays
   * are deleted; the embedded database is vacuumed after it (PGlite has no autovacuum). A failure
   * is logged and tried again at the next pass.
   */
  async function sweepNow() {
    try {
      const started = Date.now();
      const swept = await sweepFinishedRows(db, clock.now(), config.delivery.doneRetentionDays);
      const vacuumStarted = Date.now();
      await vacuumEmbedded(db);
      const vacuumMs = db.kind === 'pglite' ? Date.now() - vacuumStarted : undefined;
      if (swept.deleted || vacuumMs !== undefined) {
        logger.info('outbox sweep', { ...swept, doneRetentionDays: config.delivery.doneRetentionDays, sweepMs: vacuumStarted - started, vacuumMs });
      }
      return swept;
    } catch (err) {
      logger.warn('outbox sweep failed; will try again', { error: (err as Error).message });
      return null;
    }
  }

  async function reconcileNow() {
    try {
      if (runner) await runner.releaseAbandoned();
      await notifyFromHistory(ctx);
      return await reconcileOnce(ctx);
    } catch (err) {
      logger.warn('reconcile failed; will try again', { error: (err as Error).message });
      return 0;
    }
  }

  return {
    ctx,
    app,
    async listen(port = config.hub.port, host = config.hub.host) {
      if (role === 'worker') throw new Error('the worker role serves no HTTP');
      // Timeouts and the connection cap of hub.http (src/http/server.ts); keep-alive outlives a load balancer's idle timeout.
      server = createHttpServer(app, config.hub.http ?? DEFAULT_HTTP_SETTINGS);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      const addr = server.address() as AddressInfo;
      const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      let metricsUrl: string | undefined;
      if (config.hub.metrics?.port !== undefined) {
        // /metrics on its own port (and not on the public one: health.ts), e.g. reachable only inside the cluster.
        metricsServer = createHttpServer(createMetricsApp(ctx), config.hub.http ?? DEFAULT_HTTP_SETTINGS);
        await new Promise<void>((resolve, reject) => {
          metricsServer!.once('error', reject);
          metricsServer!.listen(config.hub.metrics!.port, host, () => resolve());
        });
        metricsUrl = `http://${shownHost}:${(metricsServer.address() as AddressInfo).port}/metrics`;
      }
      return { port: addr.port, url: `http://${shownHost}:${addr.port}`, metricsUrl };
    },
    async startBackground() {
      if (role === 'api') return;
      if (ownsEmbeddedDb) {
        // Only one process can hold this data directory: whatever it finds in flight was taken
        // by a process that died (SIGKILL, power loss) and can run again now, not after its lease.
        const freed = await db.query(`UPDATE outbox SET status = 'pending', locked_until = NULL, updated_at = $1 WHERE status = 'in_flight'`, [clock.now()]);
        if (freed.rowCount) logger.warn('outbox rows left in flight by a previous run are due again', { count: freed.rowCount });
      }
      // Customers known from before screening's hashes existed get theirs now (src/screening/store.ts), beside the work.
      void backfillIdentifierHashes(db, identifiers, clock.now())
        .then((n) => (n ? logger.info('identifier hashes backfilled for screening', { customers: n }) : undefined))
        .catch((err) => logger.warn('identifier hash backfill failed; it runs again at the next start', { error: (err as Error).message }));
      // Status changes reach the merchant within ~100 ms of their commit, not at the next reconcile (src/notify/wake.ts).
      scanner = scannerWake(() => notifyFromHistory(ctx, { recheck: false }));
      runner = createOutboxRunner(ctx, HUB_STAGES, { afterCommit: () => scanner?.wake() });
      await dispatcher.startWorkers(['hub', ...[...partners.keys()].map(partnerLane), ...notifyLanes(config)], runner, config.delivery.concurrency);
      await reconcileNow();
      const reconcile = setInterval(() => void (stopping ? undefined : reconcileNow()), config.delivery.reconcileEverySeconds * 1000);
      reconcile.unref();
      timers.push(reconcile);
      // Retention of personal data (src/privacy/retention.ts): a purge now and then, never in the way of the work.
      // …and the outbox sweep after it (src/outbox/sweep.ts): finished rows do not pile up for ever.
      const purge = setInterval(() => void (stopping ? undefined : purgeNow().then(() => (stopping ? undefined : sweepNow()))), config.privacy.purgeEveryMinutes * 60_000);
      purge.unref();
      timers.push(purge);
      for (const p of partners.values()) {
        const every = p.settings.config.pull?.everySeconds;
        if (!every) continue;
        const t = setInterval(() => void (stopping ? undefined : pullNow(p.settings.id)), every * 1000);
        t.unref();
        timers.push(t);
      }
    },
    reconcileNow,
    pullNow,
    async stop() {
      if (stopping) return;
      stopping = true;
      for (const t of timers) clearInterval(t);
      scanner?.stop();
      runner?.stop();
      for (const s of [server, metricsServer]) {
        if (!s) continue;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeIdleConnections();
        });
      }
      // The last window's count of refused requests, onto its sync-log line (ingest/verification-failures.ts).
      await (app.locals.rejectedDeliveries as { flushAll(): Promise<void> } | undefined)?.flushAll().catch(() => undefined);
      await dispatcher.close();
      if (!opts.db) await db.close();
    },
  };
}
