/** PGlite: PostgreSQL compiled to WASM, embedded in the process (the default; no service needed). */
import fs from 'node:fs';
import path from 'node:path';
import { PGlite, type PGliteInterface } from '@electric-sql/pglite';
// The `nodefs` entry point is a package export, which this repository's module resolution (node10)
// does not read for types: the value comes through require, the type from the file it resolves to.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { NodeFS } = require('@electric-sql/pglite/nodefs') as typeof import('@electric-sql/pglite/dist/fs/nodefs');
import type { Database, Sql, QueryResult } from './db';
import { initialiseInChild } from './pglite-init';

/**
 * Memory (issue 14: the embedded hub peaked at 438-493 MB RSS). PGlite reserves and touches its
 * shared memory at start-up, and WASM memory is never given back, so shared_buffers is paid in
 * full from the first second. Measured (PGlite 0.5.16, node 20, a process with PGlite alone, after
 * 3,000 inserts): shared_buffers 128 MB (PGlite's default) → 339 MB RSS, 32 MB → 252 MB, 16 MB →
 * 219 MB; 8 MB is no lower than 16 MB. Lookups in a 65 MB table, uniformly random or 90 % on its
 * newest fifth, took the same time at 16 MB and 128 MB: a page not in shared buffers is read from
 * the OS page cache, and the query costs far more than that read. work_mem, temp_buffers and
 * maintenance_work_mem changed nothing measurable (used only when a query needs them); the WASM
 * memory cannot start below PGlite's 128 MB (`initialMemory` smaller fails to link). `jit` does
 * not exist in the WASM build; off, like on PostgreSQL (src/store/postgres.ts).
 */
export const PGLITE_MEMORY_PARAMS = ['-c', 'shared_buffers=16MB', '-c', 'jit=off'];

/**
 * Durability (issue 14: "embedded commits reach the disk before a webhook is acknowledged").
 * PGlite starts PostgreSQL with `-F` (fsync off), and under it, in its WASM file system (NODEFS,
 * PGlite 0.5.16), neither fsync nor fdatasync reaches the host: `fdatasync` is a no-op, and
 * `fsync` calls the file's `stream_ops.fsync`, which NODEFS does not define (electric-sql/pglite
 * issue #1107). `relaxedDurability` does not help: it only decides whether PGlite awaits its
 * `syncToFs()`, which is a no-op for NODEFS. So a commit was written to the OS page cache — safe
 * from a crash of the process, lost with the machine's power. Here:
 *  - fsync is on (no `-F`) and `wal_sync_method = fsync`, so PostgreSQL calls fsync() on the WAL
 *    at every commit (and on data files at checkpoints, on directories after creating files);
 *  - NODEFS's `stream_ops.fsync` is given one that calls the host's fsync (DurableNodeFS).
 * A commit thus resolves only once its WAL is on disk. The ingest group commit
 * (src/ingest/group-commit.ts) acknowledges many webhooks with one commit, so one flush.
 */
export const PGLITE_DURABLE_PARAMS = ['-c', 'fsync=on', '-c', 'wal_sync_method=fsync', '-c', 'synchronous_commit=on'];

export type FsyncFn = (fd: number) => void;

interface EmscriptenStream {
  nfd?: number;
  node: unknown;
}
interface EmscriptenModule {
  NODEFS?: { stream_ops: Record<string, unknown>; realPath(node: unknown): string; tryFSOperation<T>(f: () => T): T };
}

/** PGlite's Node file system with an fsync that reaches the disk (see PGLITE_DURABLE_PARAMS). */
export class DurableNodeFS extends NodeFS {
  constructor(dataDir: string, private readonly fsync: FsyncFn = fs.fsyncSync) {
    super(dataDir);
  }

  override async init(pg: Parameters<InstanceType<typeof NodeFS>['init']>[0], opts: Parameters<InstanceType<typeof NodeFS>['init']>[1]) {
    const out = await super.init(pg, opts);
    const fsync = this.fsync;
    const preRun = out.emscriptenOpts.preRun;
    out.emscriptenOpts.preRun = [
      ...(Array.isArray(preRun) ? preRun : preRun ? [preRun] : []),
      (mod: EmscriptenModule) => {
        const nodefs = mod.NODEFS;
        if (!nodefs?.stream_ops) throw new Error('this PGlite has no NODEFS stream_ops: the embedded database cannot make its commits durable (see src/store/pglite.ts)');
        // One object shared by every NODEFS node. Errors go through NODEFS's own conversion
        // (an errno PostgreSQL sees: a failed fsync is a PANIC there, as it should be).
        nodefs.stream_ops.fsync = (stream: EmscriptenStream) =>
          nodefs.tryFSOperation(() => {
            if (typeof stream.nfd === 'number') return fsync(stream.nfd);
            const fd = fs.openSync(nodefs.realPath(stream.node), 'r');
            try {
              fsync(fd);
            } finally {
              fs.closeSync(fd);
            }
          });
      },
    ];
    return out;
  }
}

/** The start-up parameters: PGlite's own, without `-F` when durable, and ours. */
export function pgliteStartParams(durable: boolean): string[] {
  const base = PGlite.defaultStartParams.filter((p) => !(durable && p === '-F'));
  return [...base, ...PGLITE_MEMORY_PARAMS, ...(durable ? PGLITE_DURABLE_PARAMS : [])];
}

async function assertDurable(db: PGliteInterface): Promise<void> {
  const r = await db.query<{ fsync: string; method: string; sync: string }>(
    `SELECT current_setting('fsync') AS fsync, current_setting('wal_sync_method') AS method, current_setting('synchronous_commit') AS sync`,
  );
  const s = r.rows[0];
  if (s?.fsync !== 'on' || s.method !== 'fsync' || s.sync !== 'on') {
    throw new Error(`the embedded database did not start durable (fsync=${s?.fsync}, wal_sync_method=${s?.method}, synchronous_commit=${s?.sync})`);
  }
}

/**
 * `dataDir` undefined → in memory (tests; nothing to flush, so fsync stays off). `fsync` replaces
 * the host's fsync (tests count the calls).
 */
export async function createPglite(dataDir?: string, opts: { fsync?: FsyncFn } = {}): Promise<Database> {
  if (dataDir) {
    fs.mkdirSync(path.dirname(path.resolve(dataDir)), { recursive: true });
    // initdb in this process would keep ~600 MB it never gives back (see pglite-init.ts).
    await initialiseInChild(dataDir);
    fs.mkdirSync(dataDir, { recursive: true });
  }
  const db = dataDir
    ? new PGlite({ fs: new DurableNodeFS(path.resolve(dataDir), opts.fsync), startParams: pgliteStartParams(true) })
    : new PGlite({ startParams: pgliteStartParams(false) });
  await db.waitReady;
  if (dataDir) await assertDurable(db);
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
