/**
 * One small database interface over two drivers with the same SQL dialect: PGlite (embedded,
 * the default, under ./data) and PostgreSQL through `pg` (DATABASE_URL). Everything above this
 * file speaks only `Sql`, so the same queries and migrations run in both (design.md).
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Sql {
  query<T = any>(text: string, params?: unknown[]): Promise<QueryResult<T>>;
}

export interface Database extends Sql {
  readonly kind: 'pglite' | 'postgres';
  /** Run fn in one transaction; commit when it resolves, roll back when it throws. */
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /** Run several statements (migrations). */
  exec(text: string): Promise<void>;
  /** Cheap round-trip for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The database is unreachable: ingress answers 503 so the PSP retries (design.md). */
export class DatabaseUnavailable extends Error {
  constructor(cause: unknown) {
    super(`database unavailable: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'DatabaseUnavailable';
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006']);

export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e?.code && CONNECTION_CODES.has(e.code)) return true;
  if (err instanceof DatabaseUnavailable) return true;
  // pg's own wording for a connection that died or never came (no code on these).
  return /Connection terminated|connect ECONNREFUSED|Client has encountered a connection error|Client was closed and is not queryable|timeout exceeded when trying to connect|Query read timeout|Connection ended unexpectedly/i.test(
    e?.message ?? '',
  );
}
