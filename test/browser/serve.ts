/**
 * For looking at the dashboard by hand: `npx tsx test/browser/serve.ts` starts a stack with the
 * browser test's data, serves the hub plus the dashboard on another port, and prints the URL and
 * tokens. Ctrl-C stops it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack } from '../support/stack';
import { createApp } from '../../src/http/app';
import { installDashboard } from '../../src/dashboard';
import { seedDashboardData } from './seed';

async function main() {
  const stack = await startStack({ mode: 'embedded', sim: { stepMs: 50 } });
  await seedDashboardData(stack);
  const app = createApp(stack.hub.ctx, [(a) => installDashboard(a, stack.hub.ctx)]);
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  console.log(`dashboard: ${url}/dashboard/#token=${stack.token('acme')}`);
  console.log(`ACME_TOKEN=${stack.token('acme')}`);
  console.log(`GLOBEX_TOKEN=${stack.token('globex')}`);
  console.log(`HUB=${url}`);
  const stop = async () => {
    server.close();
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
