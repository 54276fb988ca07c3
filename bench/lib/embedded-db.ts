/**
 * The embedded hub's database, read by the bench after the hub has stopped: PGlite allows one
 * process at a time on a data directory, so while the hub runs the bench asks it over HTTP, and
 * afterwards it opens the directory itself for the same queries it runs on PostgreSQL in
 * services mode (the e2e phase's per-stage view).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';

export interface Queryable {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

/**
 * Open the PGlite database of a hub whose `hub.dataDir` is `dataDir` (src/hub.ts keeps it in
 * `<dataDir>/pglite`). Only once that hub has exited.
 */
export async function openEmbeddedDb(dataDir: string): Promise<Queryable & { close(): Promise<void> }> {
  const dir = path.join(dataDir, 'pglite');
  if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) throw new Error(`no PGlite database in ${dir}`);
  const db = new PGlite(dir);
  await db.waitReady;
  return {
    async query<T>(text: string, params?: unknown[]) {
      return (await db.query<T>(text, params as unknown[])).rows;
    },
    close: () => db.close(),
  };
}
