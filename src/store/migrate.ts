/**
 * Applies src/store/migrations/*.sql in order, once each, recorded in schema_migrations.
 * Safe to run from several processes at once on PostgreSQL (advisory lock).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from './db';

const DIR = path.join(__dirname, 'migrations');
const LOCK_ID = 4242_0001;

export async function migrate(db: Database): Promise<string[]> {
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.sql')).sort();
  const applied: string[] = [];
  await db.tx(async (sql) => {
    // The lock first, then even the bookkeeping table: two processes starting together on a
    // fresh database (api and worker) must not race on CREATE TABLE.
    await sql.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await sql.query('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await sql.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const f of files) {
      if (done.has(f)) continue;
      const text = fs.readFileSync(path.join(DIR, f), 'utf8');
      // Statements run one by one inside the transaction (PGlite's exec is not transactional here).
      for (const stmt of splitStatements(text)) await sql.query(stmt);
      await sql.query('INSERT INTO schema_migrations (version) VALUES ($1)', [f]);
      applied.push(f);
    }
  });
  return applied;
}

/** Split on semicolons at line ends, dropping comments; our migrations hold no functions or strings with `;`. */
export function splitStatements(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n')
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}
