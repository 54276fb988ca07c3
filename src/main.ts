/**
 * Entry point: `npm start` (role all: HTTP + workers), `npm run start:api`, `npm run start:worker`.
 * A bad config stops start-up with the field named and a non-zero exit.
 * `--queue-prefix <p>` puts this hub's BullMQ keys under `<p>:` (default `collection-hub`), so
 * several hubs (or test runs) can share one Redis; every process of one hub needs the same one.
 * `--config-required` (the Docker image's entry point) refuses to start without HUB_CONFIG or
 * config/hub.yaml; without it, a fresh clone with no config runs the example with secrets
 * generated into ./data/secrets.yaml (src/config/load.ts), listening on 127.0.0.1.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigSource, ConfigError, type LoadedConfig } from './config/load';
import { createHub, type HubRole } from './hub';
import { createLogger } from './observability/logger';
import { MappingError } from './mappings/load';

async function main() {
  let args;
  try {
    args = parseArgs({ args: process.argv.slice(2), allowPositionals: true, options: { 'queue-prefix': { type: 'string' }, 'config-required': { type: 'boolean' } } });
  } catch (err) {
    console.error(`${(err as Error).message}; usage: main.ts [all|api|worker] [--queue-prefix <prefix>] [--config-required]`);
    process.exit(2);
  }
  const role = (args.positionals[0] ?? 'all') as HubRole;
  if (!['all', 'api', 'worker'].includes(role)) {
    console.error(`unknown role ${role}: use all, api or worker`);
    process.exit(2);
  }
  const queuePrefix = args.values['queue-prefix'];
  // BullMQ key prefixes end at the first ':'; an empty one would write at the top of Redis.
  if (queuePrefix !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(queuePrefix)) {
    console.error(`--queue-prefix: letters, digits, '.', '_' and '-' only (1-64), got ${JSON.stringify(queuePrefix)}`);
    process.exit(2);
  }
  let loaded: LoadedConfig;
  try {
    loaded = loadConfigSource(process.env, { requireConfig: args.values['config-required'] === true });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof MappingError) {
      console.error(`config error: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  const { config } = loaded;
  if (loaded.generated) printFirstStart(loaded, role);
  const logger = createLogger({ level: config.hub.logLevel });
  const hub = await createHub({ config, role, logger, queuePrefix });
  let where = '';
  if (role !== 'worker') {
    const { url } = await hub.listen();
    where = url;
  }
  await hub.startBackground();
  logger.info('collection-hub started', {
    role, url: where || undefined, database: hub.ctx.db.kind, queue: hub.ctx.dispatcher.kind,
    merchants: [...hub.ctx.merchants.keys()], partners: [...hub.ctx.partners.keys()],
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping: draining in-flight work', { signal });
    const force = setTimeout(() => {
      logger.error('drain took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    await hub.stop();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** What a first start without a config did, and what to do next (stderr, before any log line). */
function printFirstStart(loaded: LoadedConfig, role: string): void {
  const rel = (f: string) => path.relative(process.cwd(), f) || f;
  const { generated, config, source } = loaded;
  const merchant = config.merchants[0]?.id ?? '<merchantId>';
  console.error(
    [
      `collection-hub: no config/hub.yaml and no HUB_CONFIG, so this hub runs ${rel(source.file)}`,
      `  with random secrets ${generated!.created ? 'generated just now into' : 'generated on its first start, kept in'} ${rel(generated!.file)} (mode 0600; keep it private).`,
      `  A merchant API token: npm run token -- ${merchant}`,
      role === 'worker' ? '' : `  Listening on ${config.hub.host} only. For production write config/hub.yaml (or set HUB_CONFIG) with secrets from the environment.`,
    ]
      .filter(Boolean)
      .join('\n'),
  );
}

main().catch((err) => {
  console.error(`collection-hub failed to start: ${(err as Error).message}`);
  process.exit(1);
});
