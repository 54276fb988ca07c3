/**
 * Where the hub keeps its own signing keys when the config gives none (issue 13, item 4): the
 * `hub_keys` table, shared by every process of the hub.
 *
 * - Encrypted at rest when `hub.keyEncryptionKey` is set (from the environment: 32 random bytes,
 *   base64): AES-256-GCM, the key id bound as additional data, stored as `enc:v1:<iv>:<tag>:<data>`.
 *   A key stored in clear before the setting was given is encrypted in place at the next start.
 *   Without the setting the private key sits in the database in clear: whoever can read the
 *   database can sign as the hub (README, Configuration).
 * - Rotated with `rotateHubKey` (`npm run rotate-hub-key`): a new key signs from the next start of
 *   each process, and the previous one stays in the JWKS until its `retire_at` (default 24 h), so an
 *   agency that cached the old key set, and tokens signed a moment before, still verify.
 */
import crypto from 'node:crypto';
import type { Database, Sql } from '../store/db';
import { generateHubKey, type HubKey, type HubKeyAlg } from './hub-signer';

const SEALED = /^enc:v1:([A-Za-z0-9_-]+):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/;

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

/** The key-encryption key from its config form (base64 or base64url of exactly 32 bytes). */
export function keyEncryptionKey(text: string | undefined): Buffer | undefined {
  if (!text) return undefined;
  const bytes = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (bytes.length !== 32) throw new KeyStoreError(`hub.keyEncryptionKey must be 32 random bytes in base64 (openssl rand -base64 32); this one decodes to ${bytes.length}`);
  return bytes;
}

export function sealPrivateKey(pem: string, kek: Buffer, kid: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const data = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
  return `enc:v1:${iv.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}:${data.toString('base64url')}`;
}

export const isSealed = (stored: string) => SEALED.test(stored);

export function openPrivateKey(stored: string, kek: Buffer | undefined, kid: string): string {
  const m = SEALED.exec(stored);
  if (!m) return stored;
  if (!kek) throw new KeyStoreError(`hub key ${kid} is stored encrypted, but hub.keyEncryptionKey is not set: give the hub the key it was encrypted with`);
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', kek, Buffer.from(m[1], 'base64url'));
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(Buffer.from(m[2], 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(m[3], 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyStoreError(`hub key ${kid} cannot be decrypted with hub.keyEncryptionKey (a different key, or the row was altered)`);
  }
}

interface Row {
  kid: string;
  alg: HubKeyAlg;
  private_pem: string;
  created_at: Date;
  retire_at: Date | null;
}

/**
 * The current key for `alg` (the newest not retired) and the previous ones still published; a
 * key is made when there is none. Clear rows are sealed on the way when a kek is given.
 */
export async function loadHubKeys(db: Database, alg: HubKeyAlg, now: Date, kek: Buffer | undefined): Promise<{ current: HubKey; previous: HubKey[] }> {
  return db.tx(async (sql) => {
    let rows = await published(sql, alg, now);
    if (!rows.some((r) => r.retire_at === null)) {
      const key = generateHubKey(alg);
      await sql.query(`INSERT INTO hub_keys (kid, alg, private_pem, created_at) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING`, [key.kid, key.alg, kek ? sealPrivateKey(key.privateKeyPem, kek, key.kid) : key.privateKeyPem, now]);
      rows = await published(sql, alg, now);
    }
    if (kek) {
      for (const r of rows.filter((x) => !isSealed(x.private_pem))) {
        await sql.query(`UPDATE hub_keys SET private_pem = $2 WHERE kid = $1`, [r.kid, sealPrivateKey(r.private_pem, kek, r.kid)]);
      }
    }
    const keys = rows.map((r) => ({ row: r, key: { kid: r.kid, alg: r.alg, privateKeyPem: openPrivateKey(r.private_pem, kek, r.kid) } }));
    const current = keys.find((k) => k.row.retire_at === null)!;
    return { current: current.key, previous: keys.filter((k) => k !== current).map((k) => k.key) };
  });
}

async function published(sql: Sql, alg: HubKeyAlg, now: Date): Promise<Row[]> {
  return (await sql.query<Row>(
    `SELECT kid, alg, private_pem, created_at, retire_at FROM hub_keys WHERE alg = $1 AND (retire_at IS NULL OR retire_at > $2) ORDER BY retire_at IS NULL DESC, created_at DESC`,
    [alg, now],
  )).rows;
}

/** Make a new current key for `alg`; the ones it replaces stay published for `overlapSeconds`. */
export async function rotateHubKey(db: Database, alg: HubKeyAlg, now: Date, overlapSeconds: number, kek: Buffer | undefined): Promise<{ kid: string; retired: string[] }> {
  return db.tx(async (sql) => {
    const retired = (await sql.query<{ kid: string }>(`UPDATE hub_keys SET retire_at = $2 WHERE alg = $1 AND retire_at IS NULL RETURNING kid`, [alg, new Date(now.getTime() + overlapSeconds * 1000)])).rows.map((r) => r.kid);
    const key = generateHubKey(alg);
    await sql.query(`INSERT INTO hub_keys (kid, alg, private_pem, created_at) VALUES ($1,$2,$3,$4)`, [key.kid, key.alg, kek ? sealPrivateKey(key.privateKeyPem, kek, key.kid) : key.privateKeyPem, now]);
    return { kid: key.kid, retired };
  });
}
