/**
 * PostgreSQL and Redis for the services-mode phases: a fresh database per phase (dropped
 * afterwards) and a Redis logical database of our own, so the hub's queues (default prefix,
 * job ids derived from outbox ids that restart with each fresh database) never meet those of
 * an earlier phase, of another bench run, or of anyone else's hub on the same Redis.
 */
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { Client } from 'pg';
import IORedis from 'ioredis';
import type { Cleanup } from './cleanup';

/** Same variables as test/support/services.ts, so CI points both at the same services. */
export const PG_ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_BASE_URL = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The hub's default BullMQ key prefix (src/queue/bullmq.ts); the bench passes no --queue-prefix. */
const HUB_QUEUE_PREFIX = 'collection-hub';
const LOCK_KEY = 'collection-hub-bench:lock';

/**
 * Names of what a run creates carry this host's tag and the run's pid, so a later run can remove
 * what a killed one left behind (its pid is gone) without touching a live run's.
 */
const HOST_TAG = createHash('sha1').update(os.hostname()).digest('hex').slice(0, 6);
export const OWNER = `${HOST_TAG}_${process.pid}`;

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in `<prefix><hosttag>_<pid>_…` when it names a run of this host that is gone. */
export function deadOwner(name: string, prefix: string): boolean {
  const m = new RegExp(`^${prefix}([0-9a-f]{6})_(\\d+)_`).exec(name);
  return Boolean(m && m[1] === HOST_TAG && !pidAlive(Number(m[2])));
}

/** Drop the databases of bench runs on this host that were killed before they could clean up. */
export async function dropStaleDatabases(log: (s: string) => void): Promise<void> {
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    const rows = (await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'hub\\_bench\\_%'`)).rows;
    for (const { datname } of rows) {
      if (!deadOwner(datname, 'hub_bench_')) continue;
      await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
      log(`dropped ${datname}, left behind by a bench run that was killed`);
    }
  } finally {
    await admin.end();
  }
}

export async function postgresReachable(): Promise<string | null> {
  const c = new Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export async function redisReachable(): Promise<string | null> {
  const r = new IORedis(REDIS_BASE_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, enableOfflineQueue: false });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    r.disconnect();
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  /** A client on the database for the bench's own read-only checks. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /**
   * Statements sent by query() so far (each one its own transaction, autocommit), so that
   * counts taken from the server's statistics can leave the bench's own out.
   */
  readonly queries: number;
  drop(): Promise<void>;
}

/** CREATE DATABASE hub_bench_<random>; dropped by drop() or by the cleanup at exit. */
export async function createDatabase(cleanup: Cleanup): Promise<BenchDatabase> {
  const name = `hub_bench_${OWNER}_${randomBytes(3).toString('hex')}`;
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  let reader: Client | null = null;
  const dropNow = async () => {
    if (reader) await reader.end().catch(() => undefined);
    reader = null;
    const c = new Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  };
  const drop = cleanup.add(`drop database ${name}`, dropNow);
  let queries = 0;
  return {
    name,
    url,
    async query<T>(text: string, params?: unknown[]) {
      if (!reader) {
        reader = new Client({ connectionString: url });
        reader.on('error', () => undefined);
        await reader.connect();
      }
      queries++;
      return (await reader.query(text, params as unknown[])).rows as T[];
    },
    get queries() {
      return queries;
    },
    drop,
  };
}

export interface BenchRedis {
  /** REDIS_URL for the hub processes: the base URL with our logical database. */
  url: string;
  db: number;
  /** Delete the hub's BullMQ keys in our logical database (between phases, processes stopped). */
  clearQueues(): Promise<number>;
}

/** Delete the hub's BullMQ keys in one logical database. */
async function clearQueuesAt(url: string): Promise<number> {
  const c = new IORedis(url, { maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  let n = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${HUB_QUEUE_PREFIX}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await c.del(...keys);
    } while (cursor !== '0');
  } finally {
    c.disconnect();
  }
  return n;
}

/**
 * Claim a logical Redis database (15 down to 1) that holds no keys, with a lock key so a second
 * bench run at the same time takes another one. Released (queues cleared, lock deleted) at exit.
 */
export async function claimRedis(cleanup: Cleanup, runId: string): Promise<BenchRedis> {
  const base = new URL(REDIS_BASE_URL);
  for (let db = 15; db >= 1; db--) {
    const u = new URL(base.toString());
    u.pathname = `/${db}`;
    const r = new IORedis(u.toString(), { maxRetriesPerRequest: 1, connectTimeout: 2000 });
    r.on('error', () => undefined);
    const token = `${OWNER}_${runId}`;
    try {
      // A lock of a killed run of this host: take its database over (its queues are cleared below).
      const holder = await r.get(LOCK_KEY);
      if (holder && deadOwner(holder, '') && (await r.eval(`if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`, 1, LOCK_KEY, holder)) === 1) {
        await clearQueuesAt(u.toString());
      }
      const size = await r.dbsize();
      if (size > 0) continue;
      const ok = await r.set(LOCK_KEY, token, 'EX', 6 * 3600, 'NX');
      if (ok !== 'OK') continue;
    } catch (err) {
      if (/DB index is out of range/i.test((err as Error).message)) continue;
      throw err;
    } finally {
      r.disconnect();
    }
    const url = u.toString();
    const clearQueues = () => clearQueuesAt(url);
    cleanup.add(`release redis db ${db}`, async () => {
      await clearQueues();
      const c = new IORedis(url, { maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      try {
        if ((await c.get(LOCK_KEY)) === token) await c.del(LOCK_KEY);
      } finally {
        c.disconnect();
      }
    });
    return { url, db, clearQueues };
  }
  throw new Error(`no empty logical Redis database (1..15) at ${REDIS_BASE_URL} to run the bench in`);
}
