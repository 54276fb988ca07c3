/**
 * Reaching the real PostgreSQL and Redis on this machine. A suite that needs one and cannot
 * reach it is skipped on a developer's machine but FAILS under CI=true (no silent green).
 */
import { Client } from 'pg';
import IORedis from 'ioredis';
import { randomBytes } from 'node:crypto';

export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CI = process.env.CI === 'true' || process.env.CI === '1';

async function probe(name: string, fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (err) {
    if (CI) throw new Error(`${name} is required under CI=true but cannot be reached: ${(err as Error).message}`);
    // eslint-disable-next-line no-console
    console.warn(`${name} not reachable (${(err as Error).message}); its tests are skipped outside CI`);
    return false;
  }
}

export function postgresAvailable(): Promise<boolean> {
  return probe('PostgreSQL', async () => {
    const c = new Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
    await c.connect();
    await c.end();
  });
}

export function redisAvailable(): Promise<boolean> {
  return probe('Redis', async () => {
    const r = new IORedis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, enableOfflineQueue: false });
    r.on('error', () => undefined);
    try {
      await r.connect();
      await r.ping();
    } finally {
      r.disconnect();
    }
  });
}

/** A fresh database for one suite; drop() removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `hub_test_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    async drop() {
      const c = new Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export function uniquePrefix(): string {
  return `hubtest-${randomBytes(4).toString('hex')}`;
}

/** Poll until fn returns a truthy value (or throw with the last error after timeoutMs). */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 15000, everyMs = 50, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * `it` for a test that needs PostgreSQL and Redis (probed once by ./global-setup.ts): skipped —
 * and reported as skipped — when they are missing outside CI; failing under CI=true.
 */
export function servicesIt(name: string, fn: () => Promise<void>, timeout?: number): void {
  const up = process.env.TEST_POSTGRES_UP !== '0' && process.env.TEST_REDIS_UP !== '0';
  if (up) it(name, fn, timeout);
  else if (process.env.CI === 'true') it(name, () => Promise.reject(new Error('PostgreSQL and Redis are required under CI')));
  else it.skip(name, fn, timeout);
}
