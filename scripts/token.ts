/** `npm run token -- <merchantId> [ttlSeconds]`: prints a merchant API token signed with auth.merchantTokenSecret. */
import { loadConfig, ConfigError } from '../src/config/load';
import { issueMerchantToken } from '../src/http/merchant-auth';

const [merchantId, ttl] = process.argv.slice(2);
if (!merchantId) {
  console.error('usage: npm run token -- <merchantId> [ttlSeconds]');
  process.exit(2);
}
try {
  const config = loadConfig();
  if (!config.merchants.some((m) => m.id === merchantId)) {
    console.error(`no merchant ${merchantId} in the config (known: ${config.merchants.map((m) => m.id).join(', ')})`);
    process.exit(1);
  }
  console.log(issueMerchantToken({ hubId: config.hub.id, secret: config.auth.merchantTokenSecret, merchantId, ttlSeconds: ttl ? Number(ttl) : config.auth.merchantTokenTtlSeconds }));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`config error: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
