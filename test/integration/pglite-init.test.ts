/**
 * A fresh embedded data directory is initialised by a child process (initdb in the hub's own
 * process would keep ~600 MB it never gives back), atomically: the directory appears only once
 * initdb has finished, and the hub opens it like any existing one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initialiseInChild, isInitialised } from '../../src/store/pglite-init';
import { createPglite } from '../../src/store/pglite';

describe('embedded database initialisation in a child process', () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-init-'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('initialises a missing directory, leaves no staging directory, and the data persists across opens', async () => {
    const dir = path.join(root, 'a', 'pglite');
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    expect(isInitialised(dir)).toBe(false);
    await initialiseInChild(dir);
    expect(isInitialised(dir)).toBe(true);
    expect(fs.readdirSync(path.dirname(dir))).toEqual(['pglite']);

    const db = await createPglite(dir);
    await db.exec('CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
    await db.close();
    const again = await createPglite(dir);
    try {
      expect((await again.query<{ v: number }>('SELECT v FROM kept')).rows).toEqual([{ v: 42 }]);
    } finally {
      await again.close();
    }
  }, 120_000);

  it('initialises an empty directory that already exists (createPglite makes it first)', async () => {
    const dir = path.join(root, 'b');
    fs.mkdirSync(dir);
    const db = await createPglite(dir);
    try {
      expect(isInitialised(dir)).toBe(true);
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
    }
  }, 120_000);

  it('leaves a directory with foreign contents alone', async () => {
    const dir = path.join(root, 'c');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a database');
    await initialiseInChild(dir);
    expect(isInitialised(dir)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual(['notes.txt']);
  });
});
