/**
 * `npm run agency-sim -- [flags]`: runs the agency simulator (reference or riverty personality) until SIGTERM or
 * SIGINT. Flags and `AGENCY_SIM_*` variables are listed by `--help` and in README.md.
 */
import { parseCli, usage } from './options';
import { createAgencySimulator } from './simulator';

async function main(): Promise<void> {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2), process.env);
  } catch (err) {
    console.error((err as Error).message);
    console.error("run with --help to see every flag");
    process.exit(2);
  }
  if (cli.help) {
    console.log(usage());
    return;
  }

  const log = (message: string): void => console.log(`${new Date().toISOString()} [agency-sim] ${message}`);
  const sim = createAgencySimulator({ ...cli.settings, log });
  const { url } = await sim.start();
  const s = cli.settings;
  const auth =
    s.personality === 'riverty'
      ? `OAuth2 client ${s.clientId} at ${url}/oauth/token, tokens live ${s.tokenTtlSeconds} s`
      : `inbound auth ${[s.inSecret && 'HS256', s.hubJwksUrl && `JWKS ${s.hubJwksUrl}`].filter(Boolean).join(' + ')}`;
  log(`${s.personality} personality, partner ${s.partnerId}, hub ${s.hubId}, ${auth}, seed ${s.seed}, step ${s.stepMs} ms, mix ${s.scenarioMix}`);
  log(`control endpoints at ${url}/_sim/cases, /_sim/requests, /_sim/faults${s.personality === 'riverty' ? ', /_sim/transactions, /_sim/tokens' : ''} …`);

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    sim.stop().then(
      () => process.exit(0),
      (err: Error) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
