/**
 * The embedded database's commits reach the disk before they resolve (issue 14): PostgreSQL runs
 * with fsync on and wal_sync_method = fsync, and PGlite's file system passes the fsync on to the
 * host (src/store/pglite.ts, DurableNodeFS). Counted here through the fsync the hub hands PGlite:
 * every commit that wrote something flushes the WAL before the transaction's promise resolves,
 * one flush for a whole batch (the ingest group commit's point), none for a read.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPglite, PGLITE_MEMORY_PARAMS, pgliteStartParams } from '../../src/store/pglite';
import type { Database } from '../../src/store/db';

describe('embedded database durability', () => {
  let root: string;
  let db: Database;
  const synced: number[] = [];
  const fsync = (fd: number) => {
    fs.fsyncSync(fd);
    synced.push(fd);
  };

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-durable-'));
    db = await createPglite(path.join(root, 'pglite'), { fsync });
    await db.exec('CREATE TABLE acked (id serial PRIMARY KEY, body text NOT NULL)');
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('runs with fsync on, fsync as the WAL sync method and synchronous commits', async () => {
    const r = await db.query<{ fsync: string; wal_sync_method: string; synchronous_commit: string }>(
      `SELECT current_setting('fsync') AS fsync, current_setting('wal_sync_method') AS wal_sync_method, current_setting('synchronous_commit') AS synchronous_commit`,
    );
    expect(r.rows[0]).toEqual({ fsync: 'on', wal_sync_method: 'fsync', synchronous_commit: 'on' });
    expect(pgliteStartParams(true)).not.toContain('-F');
  });

  it('flushes to the host before a commit resolves, once for a batch, not for a read', async () => {
    synced.length = 0;
    let before = -1;
    await db.tx(async (sql) => {
      await sql.query(`INSERT INTO acked (body) VALUES ('one webhook')`);
      before = synced.length;
    });
    // Nothing was flushed while the transaction ran; its commit flushed before tx() resolved.
    expect(before).toBe(0);
    expect(synced.length).toBeGreaterThanOrEqual(1);

    synced.length = 0;
    await db.tx(async (sql) => {
      for (let i = 0; i < 200; i++) await sql.query(`INSERT INTO acked (body) VALUES ($1)`, [`webhook ${i}`]);
    });
    expect(synced.length).toBe(1);

    synced.length = 0;
    await db.query('SELECT count(*) FROM acked');
    expect(synced).toEqual([]);
  });

  it('keeps what it committed across a reopen', async () => {
    await db.close();
    db = await createPglite(path.join(root, 'pglite'), { fsync });
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM acked')).rows[0].n).toBe(201);
  }, 120_000);

  it('starts with the memory settings, embedded in memory too (tests), where there is nothing to flush', async () => {
    const mem = await createPglite();
    try {
      const r = await mem.query<{ shared_buffers: string; fsync: string }>(`SELECT current_setting('shared_buffers') AS shared_buffers, current_setting('fsync') AS fsync`);
      const expected = PGLITE_MEMORY_PARAMS[PGLITE_MEMORY_PARAMS.indexOf('-c') + 1].split('=')[1];
      expect(r.rows[0]).toEqual({ shared_buffers: expected, fsync: 'off' });
      expect((await db.query<{ s: string }>(`SELECT current_setting('shared_buffers') AS s`)).rows[0].s).toBe(expected);
    } finally {
      await mem.close();
    }
  }, 60_000);
});
