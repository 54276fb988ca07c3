/**
 * A suite's own embedded database with every migration applied: opened before the suite's tests,
 * closed after them. `const db = migratedPglite();` then `db()` inside a test.
 */
import { createPglite } from '../../src/store/pglite';
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';

export function migratedPglite(seed?: (db: Database) => Promise<void>): () => Database {
  let db: Database | undefined;
  beforeAll(async () => {
    db = await createPglite();
    await migrate(db);
    if (seed) await seed(db);
  });
  afterAll(async () => {
    await db?.close();
  });
  return () => {
    if (!db) throw new Error('the embedded database is opened in beforeAll');
    return db;
  };
}
