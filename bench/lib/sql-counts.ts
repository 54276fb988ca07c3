/**
 * How many SQL statements and commits the hub sent to PostgreSQL during a measured window
 * (issue 14: "statements per event in the drain").
 *
 * Statements come from `pg_stat_statements` when the server has it loaded
 * (`shared_preload_libraries`): its entries of the phase's database are reset at the start of
 * the window and their `calls` summed at the end. Every statement the hub sends counts, BEGIN
 * and COMMIT included (they are statements the server parses and runs, one round trip each),
 * when `pg_stat_statements.track_utility` is on (the default; the result says). The bench's own
 * reads on its reader connection are kept out (`SET pg_stat_statements.track = none` on that
 * session). Without the extension the statement count is null with the reason: table counters
 * (rows read and written) are not statements, and the bench does not pass them off as such.
 *
 * Commits come from `pg_stat_database.xact_commit` of the database, minus the bench's own
 * transactions (each of its queries is one). Backends publish these counters lazily: a backend
 * that went idle less than a second after its previous report keeps them for up to 10 s
 * (PostgreSQL 15's PGSTAT_IDLE_INTERVAL), and one that exits reports them at once. So the caller
 * opens the window at least 10 s after the processes present went idle, and closes it once the
 * hub's processes have exited; the bench's reader forces its own report
 * (`pg_stat_force_next_flush()`, PostgreSQL 15+).
 */
import type { BenchDatabase } from './services';

export interface SqlCounts {
  /** Statements the hub sent in the window, or null (see `why`). */
  statements: number | null;
  /** Why `statements` is null. */
  why?: string;
  /** BEGIN / COMMIT / ROLLBACK statements among them (0 when utility statements are not tracked). */
  begins: number;
  commitStatements: number;
  rollbackStatements: number;
  /** `pg_stat_statements.track_utility`: whether BEGIN/COMMIT (and SET, LISTEN…) are counted at all. */
  trackUtility: boolean | null;
  /** Entries pg_stat_statements evicted in the window (pg_stat_statements.max too small): the count is then a lower bound. */
  evicted: number;
  /** The statements with the most calls, normalised text (cut to 110 characters). */
  top: { query: string; calls: number }[];
  /** Transactions committed / rolled back in the database by others than the bench's reader. */
  commits: number;
  rollbacks: number;
  /** False when the server could not be made to publish the reader's own counters (PostgreSQL < 15): commits may be off by a few. */
  commitsExact: boolean;
}

const errText = (err: unknown) => (err as Error).message.split('\n')[0];

/** pg_stat_database counters, with the reader's own report forced out first. */
async function dbCounters(db: BenchDatabase): Promise<{ commits: number; rollbacks: number; readerQueries: number; exact: boolean }> {
  let exact = true;
  try {
    await db.query(`SELECT pg_stat_force_next_flush()`);
  } catch {
    exact = false;
  }
  // The reader's transactions up to here are in the counters (the forced report runs before the
  // server answers); the SELECT below is counted by the next read, as one of the reader's own.
  const readerQueries = db.queries;
  const [x] = await db.query<{ commits: string; rollbacks: string }>(
    `SELECT xact_commit AS commits, xact_rollback AS rollbacks FROM pg_stat_database WHERE datname = current_database()`,
  );
  return { commits: Number(x?.commits ?? 0), rollbacks: Number(x?.rollbacks ?? 0), readerQueries, exact };
}

/**
 * Open the window now; the function returned closes it. Needs a superuser (or a role allowed to
 * create the extension and reset its statistics) for the statement count; the commit count
 * needs only read access.
 */
export async function startSqlCount(db: BenchDatabase): Promise<() => Promise<SqlCounts>> {
  let why: string | undefined;
  let dbid = 0;
  let trackUtility: boolean | null = null;
  let dealloc0 = 0;
  try {
    // In the phase's own fresh database, dropped with it: the shared server keeps nothing.
    await db.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`);
    // The reader's own checks (polling while the hub works) are not the hub's statements.
    await db.query(`SET pg_stat_statements.track = 'none'`);
    const [d] = await db.query<{ oid: string }>(`SELECT oid FROM pg_database WHERE datname = current_database()`);
    dbid = Number(d.oid);
    // Only this database's entries: other users of the same server keep theirs.
    await db.query(`SELECT pg_stat_statements_reset(0, $1::oid, 0)`, [dbid]);
    const [s] = await db.query<{ track_utility: string | null }>(`SELECT current_setting('pg_stat_statements.track_utility', true) AS track_utility`);
    trackUtility = s.track_utility === null ? null : s.track_utility === 'on';
    try {
      const [i] = await db.query<{ dealloc: string }>(`SELECT dealloc FROM pg_stat_statements_info`);
      dealloc0 = Number(i.dealloc);
    } catch {
      // PostgreSQL < 14: no pg_stat_statements_info; evictions go unnoticed.
    }
  } catch (err) {
    const msg = errText(err);
    if (/shared_preload_libraries/i.test(msg)) {
      let preload = '';
      try {
        const [p] = await db.query<{ v: string }>(`SELECT current_setting('shared_preload_libraries') AS v`);
        preload = p.v;
      } catch {
        // keep the message as it is
      }
      why = `pg_stat_statements is not loaded by this PostgreSQL (shared_preload_libraries = '${preload}'; it needs 'pg_stat_statements' there and a restart)`;
    } else if (/extension "pg_stat_statements" is not available|could not open extension control file/i.test(msg)) {
      why = 'pg_stat_statements is not installed on this PostgreSQL (package postgresql-contrib)';
    } else {
      why = `pg_stat_statements could not be used: ${msg}`;
    }
  }
  const c0 = await dbCounters(db);

  return async () => {
    let statements: number | null = null;
    let begins = 0;
    let commitStatements = 0;
    let rollbackStatements = 0;
    let evicted = 0;
    let top: SqlCounts['top'] = [];
    if (!why) {
      try {
        const rows = await db.query<{ query: string; calls: string }>(
          `SELECT query, sum(calls) AS calls FROM pg_stat_statements WHERE dbid = $1::oid GROUP BY query ORDER BY sum(calls) DESC`,
          [dbid],
        );
        statements = 0;
        for (const r of rows) {
          const calls = Number(r.calls);
          statements += calls;
          const q = r.query.trim().toLowerCase();
          if (/^(begin|start transaction)\b/.test(q)) begins += calls;
          else if (/^(commit|end)\b/.test(q)) commitStatements += calls;
          else if (/^rollback\b/.test(q)) rollbackStatements += calls;
        }
        top = rows.slice(0, 8).map((r) => {
          const q = r.query.replace(/\s+/g, ' ').trim();
          return { query: q.length > 110 ? `${q.slice(0, 107)}…` : q, calls: Number(r.calls) };
        });
        try {
          const [i] = await db.query<{ dealloc: string }>(`SELECT dealloc FROM pg_stat_statements_info`);
          evicted = Number(i.dealloc) - dealloc0;
        } catch {
          // PostgreSQL < 14
        }
      } catch (err) {
        why = `pg_stat_statements could not be read: ${errText(err)}`;
        statements = null;
      }
    }
    const c1 = await dbCounters(db);
    const own = c1.readerQueries - c0.readerQueries;
    return {
      statements,
      why,
      begins,
      commitStatements,
      rollbackStatements,
      trackUtility,
      evicted,
      top,
      commits: c1.commits - c0.commits - own,
      rollbacks: c1.rollbacks - c0.rollbacks,
      commitsExact: c0.exact && c1.exact,
    };
  };
}
