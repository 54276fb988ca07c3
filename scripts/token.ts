/**
 * `npm run token -- <merchantId> [ttlSeconds]`: prints a merchant API token signed with
 * auth.merchantTokenSecret, from the config the hub reads (on a fresh clone: the example with the
 * secrets of data/secrets.yaml, generated there by whichever of `npm start` and this runs first).
 */
import path from 'node:path';
import { loadConfigSource, ConfigError } from '../src/config/load';
import { issueMerchantToken } from '../src/http/merchant-auth';

const [merchantId, ttl] = process.argv.slice(2);
if (!merchantId) {
  console.error('usage: npm run token -- <merchantId> [ttlSeconds]');
  process.exit(2);
}
try {
  const { config, generated } = loadConfigSource();
  if (generated?.created) console.error(`no config/hub.yaml: random secrets generated into ${path.relative(process.cwd(), generated.file)} (mode 0600); npm start uses them too`);
  if (!config.merchants.some((m) => m.id === merchantId)) {
    console.error(`no merchant ${merchantId} in the config (known: ${config.merchants.map((m) => m.id).join(', ')})`);
    process.exit(1);
  }
  const ttlSeconds = ttl ? Number(ttl) : config.auth.merchantTokenTtlSeconds;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > config.auth.merchantTokenMaxLifetimeSeconds) {
    console.error(`ttlSeconds must be a whole number from 1 to ${config.auth.merchantTokenMaxLifetimeSeconds} (auth.merchantTokenMaxLifetimeSeconds): the hub refuses longer-lived tokens`);
    process.exit(2);
  }
  console.log(issueMerchantToken({ hubId: config.hub.id, secret: config.auth.merchantTokenSecret, merchantId, ttlSeconds }));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`config error: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
