/**
 * `npm run rotate-hub-key -- [RS256|ES256] [overlapHours]`: makes a new signing key for the hub's
 * RS256/ES256 partner calls, kept in the database (src/auth/key-store.ts). Every hub process signs
 * with it from its next start; the key it replaces stays in /.well-known/jwks.json for
 * `overlapHours` (default 24) so agencies that cached the old key set keep verifying. Restart the
 * hub's processes (one by one) after running it. Not for keys given in the config (hub.signingKey):
 * rotate those by moving the old one to hub.previousSigningKeys.
 */
import path from 'node:path';
import { loadConfigSource, ConfigError } from '../src/config/load';
import { createPglite } from '../src/store/pglite';
import { createPostgres } from '../src/store/postgres';
import { migrate } from '../src/store/migrate';
import { keyEncryptionKey, rotateHubKey, KeyStoreError } from '../src/auth/key-store';

async function main() {
  const [algArg, hoursArg] = process.argv.slice(2);
  const alg = (algArg ?? 'RS256').toUpperCase();
  if (alg !== 'RS256' && alg !== 'ES256') throw new ConfigError(`alg must be RS256 or ES256, got ${algArg}`);
  const hours = hoursArg === undefined ? 24 : Number(hoursArg);
  if (!Number.isFinite(hours) || hours < 0 || hours > 24 * 30) throw new ConfigError(`overlapHours must be a number from 0 to 720, got ${hoursArg}`);
  const { config } = loadConfigSource();
  if (config.hub.signingKey) throw new ConfigError('hub.signingKey is set in the config: rotate it there (move the old key to hub.previousSigningKeys)');
  const db = config.databaseUrl ? createPostgres(config.databaseUrl) : await createPglite(path.resolve(config.hub.dataDir, 'pglite'));
  try {
    await migrate(db);
    const r = await rotateHubKey(db, alg, new Date(), hours * 3600, keyEncryptionKey(config.hub.keyEncryptionKey));
    console.log(`new ${alg} key ${r.kid}; ${r.retired.length ? `replaced ${r.retired.join(', ')}, published until ${hours} h from now` : 'there was no key before'}. Restart the hub's processes to sign with it.`);
  } finally {
    await db.close();
  }
}

main().catch((err) => {
  if (err instanceof ConfigError || err instanceof KeyStoreError) {
    console.error(`rotate-hub-key: ${err.message}`);
    process.exit(1);
  }
  throw err;
});
