/**
 * Creating a PGlite data directory runs initdb inside the WASM instance, and the memory it grows
 * to is never given back: measured here (PGlite 0.5.16, node 20), a process that initialised a
 * fresh directory sits at ~790 MB RSS, while one that opens an existing directory sits at
 * ~180 MB. So a fresh directory is initialised by a short-lived child process, into a sibling
 * directory that is renamed into place only once initdb has finished — a crash half-way leaves
 * no half-made data directory behind — and the hub then opens it like any existing one.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** PostgreSQL writes PG_VERSION at the top of every data directory it has initialised. */
export function isInitialised(dataDir: string): boolean {
  return fs.existsSync(path.join(dataDir, 'PG_VERSION'));
}

function isEmptyOrMissing(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

async function syncPath(p: string): Promise<void> {
  const handle = await fs.promises.open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * fsync every file under `dir`, then every directory, deepest first (a fresh data directory:
 * ~1,000 files, 40 MB; the flushes run side by side on libuv's threads).
 */
export async function syncTree(dir: string): Promise<void> {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) files.push(p);
    }
    dirs.push(d);
  };
  walk(dir);
  let next = 0;
  const worker = async () => {
    while (next < files.length) await syncPath(files[next++]);
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  for (const d of dirs) await syncPath(d);
}

// Run by `node -e` in the child: initdb into the directory named by the environment, then close.
const CHILD = `
const { PGlite } = require(process.env.PGLITE_MODULE);
(async () => {
  const db = new PGlite(process.env.PGLITE_DIR);
  await db.waitReady;
  await db.close();
})().catch((err) => { console.error(err && err.stack || String(err)); process.exit(1); });
`;

/**
 * Make sure `dataDir` holds an initialised PGlite database, initialising it in a child process
 * if it is empty or missing. A directory with other contents is left to PGlite as it is.
 */
export async function initialiseInChild(dataDir: string): Promise<void> {
  if (isInitialised(dataDir) || !isEmptyOrMissing(dataDir)) return;
  const staging = `${dataDir}.init-${process.pid}-${Date.now()}`;
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(
        process.execPath,
        ['-e', CHILD],
        { env: { ...process.env, PGLITE_MODULE: require.resolve('@electric-sql/pglite'), PGLITE_DIR: staging }, timeout: 300_000, maxBuffer: 4 * 1024 * 1024 },
        (err, _stdout, stderr) => (err ? reject(new Error(`initialising the embedded database in ${dataDir} failed: ${stderr.trim() || err.message}`)) : resolve()),
      );
    });
    if (!isInitialised(staging)) throw new Error(`initialising the embedded database in ${dataDir} left no PG_VERSION behind`);
    // initdb ran with fsync off (PGlite's default): its files are on disk before the directory is
    // put in place, and the rename is on disk before the hub's first commit (src/store/pglite.ts).
    await syncTree(staging);
    // Another process may have won the race; then its directory is kept and ours dropped.
    if (isInitialised(dataDir)) return;
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.renameSync(staging, dataDir);
    await syncPath(path.dirname(path.resolve(dataDir)));
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
