/** PostgreSQL through `pg` (production mode, DATABASE_URL). */
import { Pool, types, type PoolClient } from 'pg';
import { type Database, type Sql, type QueryResult, DatabaseUnavailable, isConnectionError } from './db';

// bigint columns hold minor-unit amounts and ids well inside 2^53: read them as numbers.
types.setTypeParser(20, (v) => Number(v));

function wrap(err: unknown): never {
  throw isConnectionError(err) ? new DatabaseUnavailable(err) : err;
}

/**
 * Settings every hub connection starts with, sent in the startup packet (no round trip):
 * `jit = off` — the hub's statements are short OLTP ones, and PostgreSQL's JIT (on by default
 * since 12) compiles expressions once a plan's estimated cost passes jit_above_cost, which a
 * misestimated claim or report reaches easily: tens of milliseconds of compiling for a query that
 * runs in one (issue 14). Behind PgBouncer, which refuses unknown startup parameters unless told
 * to ignore `options` (ignore_startup_parameters), set it on the role instead:
 * `ALTER ROLE hub SET jit = off`.
 */
export const SESSION_OPTIONS = '-c jit=off';

/**
 * The connection string with SESSION_OPTIONS added to its `options` parameter. `pg` lets a
 * connection string's parameters override the pool's config, so an `options` already in
 * DATABASE_URL (e.g. a statement_timeout) is kept and ours appended to it, not replaced.
 */
export function withSessionOptions(connectionString: string): string {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    return connectionString;
  }
  const given = url.searchParams.get('options');
  url.searchParams.set('options', given ? `${given} ${SESSION_OPTIONS}` : SESSION_OPTIONS);
  return url.toString();
}

/**
 * Named (prepared) statements for the hub's repeated queries (issue 14): PostgreSQL then parses
 * and plans a statement once per connection instead of on every call — most of a backend's CPU on
 * the hub's short statements went there, not into running them (BENCHMARKS.md). A statement text
 * gets a name the second time it is seen (one-off texts stay unnamed), up to `max` texts per
 * process: the few texts built per call (a VALUES list as long as its rows) do not fill the
 * server's memory with statements used once. A name always means the same text.
 */
export function statementNames(max = 400): (text: string) => string | undefined {
  const seen = new Set<string>();
  const names = new Map<string, string>();
  return (text) => {
    const known = names.get(text);
    if (known) return known;
    if (names.size >= max) return undefined;
    if (!seen.has(text)) {
      if (seen.size < max * 4) seen.add(text);
      return undefined;
    }
    seen.delete(text);
    const name = `hub_${names.size + 1}`;
    names.set(text, name);
    return name;
  };
}

export function createPostgres(connectionString: string, opts: { max?: number; queryTimeoutMs?: number; preparedStatements?: boolean } = {}): Database {
  // Off behind a pooler that cannot keep a session's prepared statements (PgBouncer before 1.21 in transaction mode).
  const nameOf = opts.preparedStatements === false ? () => undefined : statementNames();
  /** The query as pg takes it: named when it has parameters and has been seen before. */
  const config = (text: string, params?: unknown[]) => {
    const name = params?.length ? nameOf(text) : undefined;
    return name ? { name, text, values: params } : { text, values: params };
  };
  const pool = new Pool({
    connectionString: withSessionOptions(connectionString),
    // Used when the connection string is not a URL and names no options of its own.
    options: SESSION_OPTIONS,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    // A database that vanishes without a reset (a cut network) must still fail the query, not hang it.
    keepAlive: true,
    query_timeout: opts.queryTimeoutMs ?? 60_000,
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  return {
    kind: 'postgres',
    async query<T>(text: string, params?: unknown[]): Promise<QueryResult<T>> {
      try {
        const r = await pool.query(config(text, params));
        return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
      } catch (err) {
        return wrap(err);
      }
    },
    async tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
      let client: PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        return wrap(err);
      }
      // A checked-out client has no listener of the pool's: without this one, a connection lost
      // mid-transaction (database restarted, network cut) is an unhandled 'error' event that
      // kills the whole process. The failing query reports it; the client is then discarded.
      let broken: Error | undefined;
      const onError = (err: Error) => {
        broken = err;
      };
      client.on('error', onError);
      const sql: Sql = {
        async query<R>(text: string, params?: unknown[]): Promise<QueryResult<R>> {
          try {
            const r = await client.query(config(text, params));
            return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
          } catch (err) {
            return wrap(err);
          }
        },
      };
      try {
        await client.query('BEGIN');
        const out = await fn(sql);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        // A client whose ROLLBACK did not go through is discarded, never pooled mid-transaction.
        if (!broken) await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        if (isConnectionError(err) || (broken && isConnectionError(broken))) throw err instanceof DatabaseUnavailable ? err : new DatabaseUnavailable(err);
        throw err;
      } finally {
        client.removeListener('error', onError);
        // Passing an error destroys the client instead of pooling a dead connection.
        client.release(broken);
      }
    },
    async exec(text: string): Promise<void> {
      try {
        await pool.query(text);
      } catch (err) {
        wrap(err);
      }
    },
    async ping(): Promise<void> {
      await this.query('SELECT 1');
    },
    async close(): Promise<void> {
      await pool.end();
    },
  };
}
