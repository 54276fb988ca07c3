/** PGlite: PostgreSQL compiled to WASM, embedded in the process (the default; no service needed). */
import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Database, Sql, QueryResult } from './db';
import { initialiseInChild } from './pglite-init';

/** `dataDir` undefined → in memory (tests). */
export async function createPglite(dataDir?: string): Promise<Database> {
  if (dataDir) {
    fs.mkdirSync(path.dirname(path.resolve(dataDir)), { recursive: true });
    // initdb in this process would keep ~600 MB it never gives back (see pglite-init.ts).
    await initialiseInChild(dataDir);
    fs.mkdirSync(dataDir, { recursive: true });
  }
  const db = dataDir ? new PGlite(dataDir) : new PGlite();
  await db.waitReady;
  const norm = <T>(r: { rows: unknown[]; affectedRows?: number }): QueryResult<T> => ({
    rows: r.rows as T[],
    rowCount: r.affectedRows ?? r.rows.length,
  });
  return {
    kind: 'pglite',
    async query<T>(text: string, params?: unknown[]): Promise<QueryResult<T>> {
      return norm<T>(await db.query(text, params as any[]));
    },
    async tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
      return db.transaction(async (t) => {
        const sql: Sql = {
          async query<R>(text: string, params?: unknown[]): Promise<QueryResult<R>> {
            return norm<R>(await t.query(text, params as any[]));
          },
        };
        return fn(sql);
      });
    },
    async exec(text: string): Promise<void> {
      await db.exec(text);
    },
    async ping(): Promise<void> {
      await db.query('SELECT 1');
    },
    async close(): Promise<void> {
      await db.close();
    },
  };
}
