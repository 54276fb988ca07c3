/**
 * The two stores a store-only suite runs against (no queue): in-memory PGlite and a fresh
 * PostgreSQL database of its own, dropped when the suite closes it. Suites that need the queue too
 * use ./backends.ts.
 */
import type { Database } from '../../src/store/db';
import { createPglite } from '../../src/store/pglite';
import { createPostgres } from '../../src/store/postgres';
import { createTestDatabase, postgresAvailable } from '../support/services';

export interface DbBackend {
  name: string;
  available: () => Promise<boolean>;
  open: () => Promise<{ db: Database; close: () => Promise<void> }>;
}

export const DB_BACKENDS: DbBackend[] = [
  { name: 'pglite', available: async () => true, open: async () => { const db = await createPglite(); return { db, close: () => db.close() }; } },
  {
    name: 'postgres',
    available: postgresAvailable,
    open: async () => {
      const pg = await createTestDatabase();
      const db = createPostgres(pg.url, { max: 2 });
      return { db, close: async () => { await db.close(); await pg.drop(); } };
    },
  },
];

/**
 * The suite's lifecycle on one store: open it before the tests (a store that cannot be reached
 * fails the suite under CI=true), hand it to `setup` (migrate, seed), close it after. `maybe`
 * declares a test that runs only when the store was reachable.
 */
export function dbSuite(backend: DbBackend, setup: (db: Database) => Promise<void>): { maybe: (name: string, fn: () => Promise<void>) => void } {
  let close: (() => Promise<void>) | undefined;
  let available = true;
  beforeAll(async () => {
    available = await backend.available();
    if (process.env.CI === 'true' && !available) throw new Error(`${backend.name} is not reachable`);
    if (!available) return;
    const opened = await backend.open();
    close = opened.close;
    await setup(opened.db);
  }, 60_000);
  afterAll(async () => {
    if (close) await close();
  });
  return {
    maybe: (name, fn) =>
      it(name, async () => {
        if (!available) return;
        await fn();
      }, 20_000),
  };
}
