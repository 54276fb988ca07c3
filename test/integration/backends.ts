/**
 * The two backends the integration suites run against, as one table for `describe.each`:
 * embedded (in-memory PGlite + the in-process queue) and services (a fresh PostgreSQL
 * database + BullMQ on Redis under a key prefix of its own). Everything a suite opens here is
 * closed by `cleanup()`, so jest exits.
 */
import IORedis from 'ioredis';
import type { Database } from '../../src/store/db';
import { createPglite } from '../../src/store/pglite';
import { createPostgres } from '../../src/store/postgres';
import { migrate } from '../../src/store/migrate';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { createInProcessDispatcher } from '../../src/queue/in-process';
import { createBullmqDispatcher } from '../../src/queue/bullmq';
import { createLogger } from '../../src/observability/logger';
import { createTestDatabase, postgresAvailable, redisAvailable, REDIS_URL, uniquePrefix } from '../support/services';

export type BackendName = 'pglite + in-process' | 'postgres + bullmq';

export interface BackendEnv {
  db: Database;
  /** What the first `migrate` returned (the suite's database was fresh). */
  firstMigration: string[];
  /** A new dispatcher (BullMQ: under a prefix of its own); closed by cleanup unless closed before. */
  newDispatcher(): Dispatcher;
  /**
   * Lose everything the queue holds, as a Redis flush or a process restart would: BullMQ deletes
   * only this dispatcher's keys (SCAN + DEL on `<prefix>:*`); in-process closes the dispatcher
   * (dropping what waits) and returns a fresh one. Returns the dispatcher to go on with.
   */
  loseQueue(d: Dispatcher): Promise<{ dispatcher: Dispatcher; keysDeleted: number }>;
  /** Keys left under this dispatcher's prefix (BullMQ only; 0 for in-process). */
  queueKeys(d: Dispatcher): Promise<number>;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: BackendName;
  mode: 'embedded' | 'services';
  available(): Promise<boolean>;
  open(): Promise<BackendEnv>;
}

const logger = createLogger({ silent: true });

async function scanKeys(redis: IORedis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

export async function deletePrefixKeys(redis: IORedis, prefix: string): Promise<number> {
  const keys = await scanKeys(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  return keys.length;
}

const embedded: Backend = {
  name: 'pglite + in-process',
  mode: 'embedded',
  available: async () => true,
  async open() {
    const db = await createPglite();
    const firstMigration = await migrate(db);
    const open = new Set<Dispatcher>();
    const track = (d: Dispatcher) => {
      open.add(d);
      const close = d.close.bind(d);
      d.close = async () => {
        open.delete(d);
        await close();
      };
      return d;
    };
    return {
      db,
      firstMigration,
      newDispatcher: () => track(createInProcessDispatcher(logger)),
      async loseQueue(d) {
        const lost = await d.pending();
        await d.close();
        return { dispatcher: track(createInProcessDispatcher(logger)), keysDeleted: lost };
      },
      queueKeys: async () => 0,
      async cleanup() {
        for (const d of [...open]) await d.close();
        await db.close();
      },
    };
  },
};

const services: Backend = {
  name: 'postgres + bullmq',
  mode: 'services',
  available: async () => (await postgresAvailable()) && (await redisAvailable()),
  async open() {
    const pg = await createTestDatabase();
    const db = createPostgres(pg.url, { max: 12 });
    const firstMigration = await migrate(db);
    const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 2 });
    redis.on('error', () => undefined);
    const prefixes = new Map<Dispatcher, string>();
    const open = new Set<Dispatcher>();
    const newDispatcher = () => {
      const prefix = uniquePrefix();
      const d = createBullmqDispatcher(REDIS_URL, logger, { prefix });
      const close = d.close.bind(d);
      d.close = async () => {
        open.delete(d);
        await close();
      };
      prefixes.set(d, prefix);
      open.add(d);
      return d;
    };
    return {
      db,
      firstMigration,
      newDispatcher,
      async loseQueue(d) {
        const keysDeleted = await deletePrefixKeys(redis, prefixes.get(d)!);
        return { dispatcher: d, keysDeleted };
      },
      queueKeys: async (d) => (await scanKeys(redis, prefixes.get(d)!)).length,
      async cleanup() {
        for (const d of [...open]) await d.close();
        for (const prefix of prefixes.values()) await deletePrefixKeys(redis, prefix);
        redis.disconnect();
        await db.close();
        await pg.drop();
      },
    };
  },
};

export const BACKENDS: Backend[] = [embedded, services];

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
