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
