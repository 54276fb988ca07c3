/** PostgreSQL through `pg` (production mode, DATABASE_URL). */
import { Pool, types, type PoolClient } from 'pg';
import { type Database, type Sql, type QueryResult, DatabaseUnavailable, isConnectionError } from './db';

// bigint columns hold minor-unit amounts and ids well inside 2^53: read them as numbers.
types.setTypeParser(20, (v) => Number(v));

function wrap(err: unknown): never {
  throw isConnectionError(err) ? new DatabaseUnavailable(err) : err;
}

export function createPostgres(connectionString: string, opts: { max?: number; queryTimeoutMs?: number } = {}): Database {
  const pool = new Pool({
    connectionString,
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
        const r = await pool.query(text, params as unknown[]);
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
            const r = await client.query(text, params as unknown[]);
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
