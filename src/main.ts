/**
 * Entry point: `npm start` (role all: HTTP + workers), `npm run start:api`, `npm run start:worker`.
 * A bad config stops start-up with the field named and a non-zero exit.
 * `--queue-prefix <p>` puts this hub's BullMQ keys under `<p>:` (default `collection-hub`), so
 * several hubs (or test runs) can share one Redis; every process of one hub needs the same one.
 */
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from './config/load';
import { createHub, type HubRole } from './hub';
import { createLogger } from './observability/logger';
import { MappingError } from './mappings/load';

async function main() {
  let args;
  try {
    args = parseArgs({ args: process.argv.slice(2), allowPositionals: true, options: { 'queue-prefix': { type: 'string' } } });
  } catch (err) {
    console.error(`${(err as Error).message}; usage: main.ts [all|api|worker] [--queue-prefix <prefix>]`);
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
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof MappingError) {
      console.error(`config error: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
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

main().catch((err) => {
  console.error(`collection-hub failed to start: ${(err as Error).message}`);
  process.exit(1);
});
