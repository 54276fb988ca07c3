/**
 * `npm run demo`: the whole product in one process, on loopback. Starts two agency simulators —
 * `refagency` (the reference protocol: JWT, pushes) for acme and `riverty` (the Riverty-shaped
 * personality: OAuth2 client credentials, a pull-only transaction feed the hub reads every 2 s) for
 * globex — local fakes of the Mollie and GoCardless APIs, and the hub (embedded database under
 * ./data/demo, wiped each run; in-process queue), replays a few months of webhooks for two
 * merchants over real HTTP, in time order — acme (NL) takes payments through Stripe, Mollie and
 * GoCardless, globex (DE) through Stripe and Adyen — waits until the hub has handed the unpaid
 * invoices over, then lets each agency work two of its cases into a payment arrangement (one paid
 * off instalment by instalment, one with two of three instalments paid) and waits until the hub has
 * the agencies' updates. The summary shows per agency the cases, statuses, arrangements, the
 * statutory collection costs the hub computed and sent (WIK for acme's NL consumers), and the
 * invoices that wait on the NL 14-day notice gate (country rules) although acme's hand-over period
 * has passed. It keeps running — the agencies work their cases, refagency pushes, the hub pulls
 * riverty — until Ctrl-C or SIGTERM.
 *
 * Each PSP's deliveries are made as that PSP makes them (as in test/e2e): Stripe events signed with
 * stripe-node's helper; Mollie classic webhooks (`id=tr_…`, unsigned), the payment and its customer
 * served by the fake Mollie that acme's `apiBase` points at; Adyen notifications with per-item HMAC
 * signatures and HTTP Basic credentials; GoCardless batches of link-only events signed with
 * `Webhook-Signature`, the payment, mandate and customer served by the fake GoCardless. Mollie and
 * GoCardless lookups happen when the hub processes an event, so before a fake resource changes
 * (a failed payment paid later, a chargeback), the demo waits until the hub has processed the
 * deliveries that read it — the hub sees each state the PSP had when it sent the webhook.
 *
 * `--once` (or DEMO_ONCE=1) exits 0 after the summary (tests, CI). Other settings, all optional:
 * PORT (hub, 3000), DEMO_SIM_PORT (refagency simulator, 4010), DEMO_RIVERTY_SIM_PORT (riverty simulator, 4011), DEMO_DATA_DIR (./data/demo), DEMO_SEED (42),
 * DEMO_STEP_MS (1500, between the agency's lifecycle steps), LOG_LEVEL (hub logs, warn),
 * DEMO_VERBOSE=1 (the simulator's own log lines). The fake PSP APIs listen on free loopback ports.
 * The data directory is wiped only when it is empty or was made by the demo (a marker file), so a
 * mistyped DEMO_DATA_DIR cannot delete anything else.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseConfig, ConfigError, type HubConfig } from '../src/config/load';
import { generateSecret } from '../src/config/secrets';
import { createHub, type Hub } from '../src/hub';
import { createLogger } from '../src/observability/logger';
import { issueMerchantToken } from '../src/http/merchant-auth';
import { createAgencySimulator, type AgencySimulator } from '../sim/agency-sim/simulator';
import { loadCountryRules, ruleFor } from '../src/policy/country-rules';
import { invoiceNoticeGate } from '../src/policy/letter-evidence';
import { loadCustomerPicture } from '../src/reports/customer-picture';
import { signStripe } from '../sim/psp/stripe-events';
import { classicBody } from '../sim/psp/mollie-events';
import { adyenNotification, basicAuthHeader } from '../sim/psp/adyen-events';
import { signGoCardless, webhookBody } from '../sim/psp/gocardless-events';
import { createFakeMollie, type FakeMollie } from '../sim/psp/fake-mollie';
import { createFakeGoCardless, type FakeGoCardless } from '../sim/psp/fake-gocardless';
import {
  ADYEN_MERCHANT_ACCOUNT,
  DEMO_MERCHANTS,
  DEMO_PSPS,
  exampleCustomer,
  generateDemoEvents,
  merchantOf,
  summarizeDemoEvents,
  type DemoEvent,
  type DemoMerchant,
  type DemoPsp,
} from './demo-data';

const HUB_ID = 'collection-hub';
const PARTNER_ID = 'refagency';
const RIVERTY_ID = 'riverty';
/** The OAuth2 client id the hub uses at the riverty simulator. */
const RIVERTY_CLIENT_ID = 'collection-hub-demo';
/** How often the hub pulls riverty's transaction feed in the demo (Riverty has no push). */
const RIVERTY_PULL_SECONDS = 2;
/** Cases per agency the demo works into a payment arrangement before the summary. */
const ARRANGEMENT_CASES = 2;
const SYNC_TIMEOUT_MS = 60_000;
const HOST = '127.0.0.1';
/** Written into the data directory, so the wipe at start never deletes a directory the demo did not make. */
const DATA_MARKER = '.collection-hub-demo';
const DRAIN_TIMEOUT_MS = 120_000;
/** A status line when something changed, at most this often. */
const STATUS_EVERY_MS = 3_000;

interface DemoSettings {
  once: boolean;
  hubPort: number;
  simPort: number;
  rivertyPort: number;
  dataDir: string;
  seed: number;
  stepMs: number;
  logLevel: string;
  verbose: boolean;
}

class DemoError extends Error {}

/** The demo's own switches, read here once (the hub's config reads the environment only in src/config). */
function demoSettings(argv: string[], env: NodeJS.ProcessEnv): DemoSettings {
  for (const a of argv) if (a !== '--once') throw new DemoError(`unknown argument ${a} (the demo takes only --once; settings are environment variables, see scripts/demo.ts)`);
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new DemoError(`${name}: "${raw}" is not an integer between ${min} and ${max}`);
    return n;
  };
  const flag = (name: string) => ['1', 'true', 'yes'].includes((env[name] ?? '').toLowerCase());
  const s: DemoSettings = {
    once: argv.includes('--once') || flag('DEMO_ONCE'),
    hubPort: int('PORT', 3000, 1, 65535),
    simPort: int('DEMO_SIM_PORT', 4010, 1, 65535),
    rivertyPort: int('DEMO_RIVERTY_SIM_PORT', 4011, 1, 65535),
    dataDir: path.resolve(env.DEMO_DATA_DIR || './data/demo'),
    seed: int('DEMO_SEED', 42, -2147483648, 2147483647),
    stepMs: int('DEMO_STEP_MS', 1500, 0, 3_600_000),
    logLevel: env.LOG_LEVEL || 'warn',
    verbose: flag('DEMO_VERBOSE'),
  };
  if (s.hubPort === s.simPort) throw new DemoError(`PORT and DEMO_SIM_PORT are both ${s.hubPort}; the hub and the agency simulator need a port each`);
  if (s.rivertyPort === s.hubPort || s.rivertyPort === s.simPort) {
    throw new DemoError(`DEMO_RIVERTY_SIM_PORT ${s.rivertyPort} is also PORT or DEMO_SIM_PORT; the hub and the two agency simulators need a port each`);
  }
  return s;
}

/** Fails with a message naming the setting when something already listens on the port. */
async function ensurePortFree(port: number, what: string, setting: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new DemoError(`port ${port} (${what}) is already in use — is another demo or hub running? Stop it, or pick another port with ${setting}=<port>.`));
      else if (err.code === 'EACCES') reject(new DemoError(`port ${port} (${what}) needs privileges; pick another with ${setting}=<port>.`));
      else reject(err);
    });
    probe.listen(port, HOST, () => probe.close(() => resolve()));
  });
}

function listenError(err: unknown, port: number, what: string, setting: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new DemoError(`port ${port} (${what}) is already in use; pick another with ${setting}=<port>.`);
  return err as Error;
}

/** A fresh directory each run; refuses to wipe one that holds anything the demo did not put there. */
function prepareDataDir(dir: string): void {
  if (fs.existsSync(dir)) {
    const entries = fs.readdirSync(dir);
    if (entries.length > 0 && !entries.includes(DATA_MARKER)) {
      throw new DemoError(`${dir} exists and was not made by the demo; not wiping it. Point DEMO_DATA_DIR at an empty or new directory.`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, DATA_MARKER), 'Made by `npm run demo`; wiped at the start of each demo run.\n');
}

const secret = (prefix = '') => prefix + crypto.randomBytes(32).toString('base64url');

/** Where the hub reaches the fake PSP APIs (each merchant's `apiBase`). */
interface FakeApis {
  mollie: FakeMollie;
  mollieApiBase: string;
  gocardless: FakeGoCardless;
  gocardlessUrl: string;
}

/**
 * The demo's hub config, the same shape as config/hub.example.yaml. Secrets stay `${…}` references,
 * filled from a per-run environment as in production.
 */
function demoConfigYaml(s: DemoSettings, simUrl: string, rivertyUrl: string, fakes: Pick<FakeApis, 'mollieApiBase' | 'gocardlessUrl'>): string {
  return `
hub:
  id: ${HUB_ID}
  publicUrl: http://${HOST}:${s.hubPort}
  port: ${s.hubPort}
  host: ${HOST}
  dataDir: ${JSON.stringify(s.dataDir)}
  logLevel: ${s.logLevel}
  identifierHashSecret: "\${DEMO_IDENTIFIER_HASH_SECRET}"   # screening's salted hashes
auth:
  merchantTokenSecret: "\${DEMO_MERCHANT_TOKEN_SECRET}"
  merchantTokenTtlSeconds: 28800
delivery: { maxAttempts: 12, baseDelayMs: 1000, maxDelayMs: 60000, reconcileEverySeconds: 2, leaseSeconds: 60, concurrency: 8 }
merchants:
  - id: acme
    name: Acme Subscriptions BV
    country: NL
    providers:
      stripe: { webhookSecret: "\${DEMO_ACME_STRIPE_WHSEC}" }   # no apiKey: the demo never calls Stripe
      mollie:
        apiKey: "\${DEMO_ACME_MOLLIE_API_KEY}"
        apiBase: ${fakes.mollieApiBase}   # the demo's fake Mollie API
      gocardless:
        webhookSecret: "\${DEMO_ACME_GOCARDLESS_WHSEC}"
        accessToken: "\${DEMO_ACME_GOCARDLESS_TOKEN}"
        apiBase: ${fakes.gocardlessUrl}   # the demo's fake GoCardless API
    partner: ${PARTNER_ID}
    # dunningLetterAfterDays: acme states its dunning sends the NL 14-day letter 3 days after the
    # first failure: the hub's letter evidence for the notice term and the WIK costs (README "Country rules").
    policy: { handoverAfterDays: 14, minAmount: { value: 500, currency: EUR }, stackWindowDays: 45, dunningLetterAfterDays: 3 }
  - id: globex
    name: Globex GmbH
    country: DE
    providers:
      stripe: { webhookSecret: "\${DEMO_GLOBEX_STRIPE_WHSEC}" }
      adyen:
        hmacKeys: "\${DEMO_GLOBEX_ADYEN_HMAC_KEY}"
        merchantAccount: ${ADYEN_MERCHANT_ACCOUNT}
        basicAuth: { username: "\${DEMO_GLOBEX_ADYEN_USER}", password: "\${DEMO_GLOBEX_ADYEN_PASSWORD}" }
        maxEventAgeDays: 400   # the demo replays months of history at once; a live webhook is never older than 30 days
    partner: ${RIVERTY_ID}
    policy: { handoverAfterDays: 14, minAmount: { value: 500, currency: EUR }, stackWindowDays: 45 }
partners:
  - id: ${PARTNER_ID}
    connector: reference
    name: Reference Agency (simulator)
    baseUrl: ${simUrl}
    timeoutMs: 5000
    auth:
      outbound: { alg: HS256, secret: "\${DEMO_REFAGENCY_OUT_SECRET}" }
      inbound: { alg: HS256, secret: "\${DEMO_REFAGENCY_IN_SECRET}" }
    pull: { everySeconds: 30 }
  - id: ${RIVERTY_ID}
    connector: riverty
    name: Riverty (simulator)
    baseUrl: ${rivertyUrl}
    clientId: ${RIVERTY_CLIENT_ID}
    clientSecret: "\${DEMO_RIVERTY_CLIENT_SECRET}"
    timeoutMs: 5000
    pull: { everySeconds: ${RIVERTY_PULL_SECONDS}, limit: 200 }
`;
}

interface Secrets {
  merchantToken: string;
  identifierHash: string;
  hubToAgency: string;
  agencyToHub: string;
  rivertyClientSecret: string;
  stripe: Record<DemoMerchant, string>;
  mollieApiKey: string;
  gocardless: { webhookSecret: string; accessToken: string };
  adyen: { hmacKey: string; username: string; password: string };
}

const pad = (label: string) => `  ${label.padEnd(22)}`;
/** The per-agency and example lines: wider labels. */
const pad2 = (label: string) => `  ${label.padEnd(28)}`;
const countsLine = (rows: { key: string; n: number }[]) => (rows.length ? rows.map((r) => `${r.key} ${r.n}`).join(', ') : 'none');

async function groupCounts(hub: Hub, sql: string, params: unknown[] = []): Promise<{ key: string; n: number }[]> {
  const r = await hub.ctx.db.query<{ key: string; n: number | string }>(sql, params);
  return r.rows.map((x) => ({ key: x.key, n: Number(x.n) }));
}

/** Outbox rows due within the next ten minutes (retries included), or being worked on. Hand-overs due in days do not count. */
async function outboxBacklog(hub: Hub): Promise<{ due: number; later: number }> {
  const soon = new Date(Date.now() + 10 * 60_000);
  const r = await hub.ctx.db.query<{ due: number | string; later: number | string }>(
    `SELECT count(*) FILTER (WHERE status = 'in_flight' OR next_attempt_at <= $1) AS due,
            count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > $1) AS later
       FROM outbox WHERE status IN ('pending','in_flight')`,
    [soon],
  );
  return { due: Number(r.rows[0].due), later: Number(r.rows[0].later) };
}

async function waitForDrain(hub: Hub, log: (m: string) => void): Promise<{ drained: boolean; later: number }> {
  const started = Date.now();
  let lastShown = 0;
  for (;;) {
    const { due, later } = await outboxBacklog(hub);
    if (due === 0) return { drained: true, later };
    if (Date.now() - started > DRAIN_TIMEOUT_MS) return { drained: false, later };
    if (Date.now() - lastShown > 2000) {
      log(`waiting for the hub: ${due} outbox row(s) to work (events to process, hand-overs, calls to the agency)`);
      lastShown = Date.now();
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Per PSP: deliveries sent and accepted (2xx, and `[accepted]` for Adyen). */
type ReplayCounts = Record<DemoPsp, { sent: number; accepted: number }>;

/**
 * Keeps the fake PSP APIs in step with the replay. A Mollie or GoCardless webhook only names what
 * changed; the hub reads the state when it processes the event. So each resource is set to the
 * state the PSP had when it sent the webhook, and before a resource the hub was told about changes
 * again, the demo waits until the hub has processed those earlier deliveries.
 */
class FakeSync {
  private readonly seeded = new Map<string, string>();
  /** Resource key → LIKE patterns of the inbound event ids that read it. */
  private readonly readers = new Map<string, { merchant: string; provider: string; patterns: string[] }>();

  constructor(
    private readonly hub: Hub,
    private readonly fakes: FakeApis,
    private readonly stopped: () => boolean,
  ) {}

  /** Sets the resources `e` needs, waiting first where one changes under an unprocessed delivery. */
  async prepare(e: DemoEvent): Promise<void> {
    if (e.psp === 'mollie') {
      const id = String(e.payment.id);
      await this.set(`mollie:payment:${id}`, { payment: e.payment, chargebacks: e.chargebacks }, () => {
        this.fakes.mollie.setPayment(e.payment);
        this.fakes.mollie.chargebacks.delete(id);
        for (const cb of e.chargebacks) this.fakes.mollie.addChargeback(cb);
      });
      await this.set(`mollie:customer:${e.mollieCustomer.id}`, e.mollieCustomer, () => this.fakes.mollie.setCustomer(e.mollieCustomer));
    } else if (e.psp === 'gocardless') {
      const { payment, mandate, customer } = e.resources;
      if (payment) await this.set(`gocardless:payment:${payment.id}`, payment, () => this.fakes.gocardless.payments.set(payment.id, structuredClone(payment)));
      await this.set(`gocardless:mandate:${mandate.id}`, mandate, () => this.fakes.gocardless.mandates.set(mandate.id, structuredClone(mandate)));
      await this.set(`gocardless:customer:${customer.id}`, customer, () => this.fakes.gocardless.customers.set(customer.id, structuredClone(customer)));
    }
  }

  /** Notes which hub events will read the resources `e` touched (after it was delivered). */
  delivered(e: DemoEvent): void {
    if (e.psp === 'mollie') {
      // Classic deliveries are stored as `<payment id>:<arrival ms>` (connectors/psp/mollie/verify.ts).
      const like = `${String(e.payment.id).replace(/[\\%_]/g, (c) => `\\${c}`)}:%`;
      this.read(`mollie:payment:${e.payment.id}`, e.merchant, 'mollie', like);
      this.read(`mollie:customer:${e.mollieCustomer.id}`, e.merchant, 'mollie', like);
    } else if (e.psp === 'gocardless') {
      for (const ev of e.events) {
        const { payment, mandate, customer } = e.resources;
        if (payment) this.read(`gocardless:payment:${payment.id}`, e.merchant, 'gocardless', ev.id);
        this.read(`gocardless:mandate:${mandate.id}`, e.merchant, 'gocardless', ev.id);
        this.read(`gocardless:customer:${customer.id}`, e.merchant, 'gocardless', ev.id);
      }
    }
  }

  private read(key: string, merchant: string, provider: string, pattern: string): void {
    const r = this.readers.get(key) ?? { merchant, provider, patterns: [] };
    if (!r.patterns.includes(pattern)) r.patterns.push(pattern);
    this.readers.set(key, r);
  }

  private async set(key: string, state: unknown, apply: () => void): Promise<void> {
    const json = JSON.stringify(state);
    if (this.seeded.get(key) === json) return;
    const r = this.readers.get(key);
    if (r) {
      await this.waitProcessed(r.merchant, r.provider, r.patterns);
      this.readers.delete(key);
    }
    apply();
    this.seeded.set(key, json);
  }

  private async waitProcessed(merchant: string, provider: string, patterns: string[]): Promise<void> {
    const where = patterns.map((_, i) => `provider_event_id LIKE $${i + 3}`).join(' OR ');
    const started = Date.now();
    for (;;) {
      const r = await this.hub.ctx.db.query<{ n: number | string }>(
        `SELECT count(*) AS n FROM inbound_events WHERE merchant_id = $1 AND provider = $2 AND status = 'received' AND (${where})`,
        [merchant, provider, ...patterns],
      );
      if (Number(r.rows[0].n) === 0 || this.stopped()) return;
      if (Date.now() - started > 30_000) throw new DemoError(`the hub did not process ${provider} events ${patterns.join(', ')} within 30 s`);
      await new Promise((res) => setTimeout(res, 25));
    }
  }
}

/** The HTTP request a PSP makes for one delivery, signed as that PSP signs it (see test/e2e). */
function webhookRequest(e: DemoEvent, hubUrl: string, secrets: Secrets): { url: string; init: RequestInit } {
  const url = `${hubUrl}/v1/webhooks/${e.psp}/${e.merchant}`;
  switch (e.psp) {
    case 'stripe': {
      // Signed now, as Stripe signs each delivery (the event's own `created` stays months back).
      const { body, header } = signStripe(e.event, secrets.stripe[e.merchant]);
      return { url, init: { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body } };
    }
    case 'mollie':
      // A classic webhook: only the id, unsigned; the hub fetches the payment from (the fake) Mollie.
      return {
        url,
        init: { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'Mollie HTTP client/1.0' }, body: classicBody(String(e.payment.id)) },
      };
    case 'adyen': {
      const body = adyenNotification([e.item], { hmacKey: secrets.adyen.hmacKey });
      return {
        url,
        init: {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: basicAuthHeader(secrets.adyen.username, secrets.adyen.password) },
          body: JSON.stringify(body),
        },
      };
    }
    case 'gocardless': {
      const signed = signGoCardless(webhookBody(e.events, e.webhookId), secrets.gocardless.webhookSecret);
      return {
        url,
        init: {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'gocardless-webhook-service/1.2', 'webhook-signature': signed.signature },
          body: signed.body,
        },
      };
    }
  }
}

async function replay(
  events: DemoEvent[],
  hubUrl: string,
  secrets: Secrets,
  sync: FakeSync,
  log: (m: string) => void,
  stopped: () => boolean,
): Promise<{ sent: number; refused: string[]; counts: ReplayCounts }> {
  const refused: string[] = [];
  const counts = Object.fromEntries(DEMO_PSPS.map((p) => [p, { sent: 0, accepted: 0 }])) as ReplayCounts;
  let sent = 0;
  for (const e of events) {
    if (stopped()) break;
    await sync.prepare(e);
    const { url, init } = webhookRequest(e, hubUrl, secrets);
    const res = await fetch(url, init);
    const text = await res.text();
    sent++;
    counts[e.psp].sent++;
    const ok = res.ok && (e.psp !== 'adyen' || text === '[accepted]');
    if (ok) counts[e.psp].accepted++;
    else refused.push(`${e.merchant} ${e.psp} ${e.type} ${e.key}: ${res.status} ${text.slice(0, 200)}`);
    sync.delivered(e);
    if (sent % 25 === 0 || sent === events.length) log(`replayed ${sent}/${events.length}`);
  }
  return { sent, refused, counts };
}

async function main(): Promise<void> {
  const s = demoSettings(process.argv.slice(2), process.env);
  const log = (m: string) => console.log(`[demo] ${m}`);
  const hubUrl = `http://${HOST}:${s.hubPort}`;
  const simUrl = `http://${HOST}:${s.simPort}`;
  const rivertyUrl = `http://${HOST}:${s.rivertyPort}`;

  // Before anything is wiped: a running demo's data must not be pulled from under it.
  await ensurePortFree(s.hubPort, 'hub', 'PORT');
  await ensurePortFree(s.simPort, 'agency simulator', 'DEMO_SIM_PORT');
  await ensurePortFree(s.rivertyPort, 'riverty agency simulator', 'DEMO_RIVERTY_SIM_PORT');
  prepareDataDir(s.dataDir);

  // New for each run, drawn as the hub's first start draws its own (src/config/secrets.ts), so each
  // passes the rules a hub applies to its secrets at start-up.
  const secrets: Secrets = {
    merchantToken: generateSecret('merchantToken'),
    identifierHash: generateSecret('identifierHash'),
    hubToAgency: generateSecret('hs256'),
    agencyToHub: generateSecret('hs256'),
    rivertyClientSecret: generateSecret('clientSecret'),
    stripe: { acme: generateSecret('stripeWebhook'), globex: generateSecret('stripeWebhook') },
    // Mollie keys are `test_`/`live_` and alphanumerics.
    mollieApiKey: `test_${crypto.randomBytes(15).toString('hex')}`,
    gocardless: { webhookSecret: generateSecret('gocardlessWebhook'), accessToken: `sandbox_${secret()}` },
    adyen: { hmacKey: generateSecret('adyenHmac'), username: 'ws_globex_demo', password: generateSecret('basicAuthPassword') },
  };

  // The PSP APIs the hub reads from (Mollie's payments, GoCardless's payments, mandates and
  // customers), on free loopback ports; they accept only the merchant's own credentials. The fake
  // Mollie keeps Mollie's lifecycle (a failed, expired, canceled or paid payment never changes
  // status), so the demo data cannot turn a failed payment paid behind the same id.
  const mollie = createFakeMollie({ apiKey: secrets.mollieApiKey, strictLifecycle: true });
  const gocardless = createFakeGoCardless({ accessToken: secrets.gocardless.accessToken });
  const { apiBase: mollieApiBase } = await mollie.start();
  const { url: gocardlessUrl } = await gocardless.start();
  const fakes: FakeApis = { mollie, mollieApiBase, gocardless, gocardlessUrl };

  let config: HubConfig;
  try {
    config = parseConfig(demoConfigYaml(s, simUrl, rivertyUrl, fakes), {
      DEMO_MERCHANT_TOKEN_SECRET: secrets.merchantToken,
      DEMO_IDENTIFIER_HASH_SECRET: secrets.identifierHash,
      DEMO_ACME_STRIPE_WHSEC: secrets.stripe.acme,
      DEMO_GLOBEX_STRIPE_WHSEC: secrets.stripe.globex,
      DEMO_ACME_MOLLIE_API_KEY: secrets.mollieApiKey,
      DEMO_ACME_GOCARDLESS_WHSEC: secrets.gocardless.webhookSecret,
      DEMO_ACME_GOCARDLESS_TOKEN: secrets.gocardless.accessToken,
      DEMO_GLOBEX_ADYEN_HMAC_KEY: secrets.adyen.hmacKey,
      DEMO_GLOBEX_ADYEN_USER: secrets.adyen.username,
      DEMO_GLOBEX_ADYEN_PASSWORD: secrets.adyen.password,
      DEMO_REFAGENCY_OUT_SECRET: secrets.hubToAgency,
      DEMO_REFAGENCY_IN_SECRET: secrets.agencyToHub,
      DEMO_RIVERTY_CLIENT_SECRET: secrets.rivertyClientSecret,
    });
  } catch (err) {
    await Promise.all([mollie.stop(), gocardless.stop()]);
    if (err instanceof ConfigError) throw new DemoError(`the demo's config is invalid: ${err.message}`);
    throw err;
  }

  let sim: AgencySimulator | null = null;
  let riverty: AgencySimulator | null = null;
  let hub: Hub | null = null;
  let stopping = false;
  const stop = async (code: number, why?: string) => {
    if (stopping) return;
    stopping = true;
    if (why) log(why);
    const force = setTimeout(() => {
      console.error('[demo] stopping took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    // The agency stops working cases first, so no new pushes race the hub's shutdown.
    sim?.pause();
    riverty?.pause();
    if (hub) await hub.stop();
    if (sim) await sim.stop();
    if (riverty) await riverty.stop();
    await Promise.all([mollie.stop(), gocardless.stop()]);
    log('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0, 'SIGINT: stopping the hub and the agency simulator'));
  process.on('SIGTERM', () => void stop(0, 'SIGTERM: stopping the hub and the agency simulator'));

  try {
    sim = createAgencySimulator({
      port: s.simPort,
      host: HOST,
      partnerId: PARTNER_ID,
      hubId: HUB_ID,
      hubUrl,
      inSecret: secrets.hubToAgency,
      outSecret: secrets.agencyToHub,
      seed: s.seed,
      stepMs: s.stepMs,
      log: s.verbose ? (m) => console.log(`[agency-sim] ${m}`) : undefined,
    });
    await sim.start().catch((err) => {
      throw listenError(err, s.simPort, 'agency simulator', 'DEMO_SIM_PORT');
    });
    riverty = createAgencySimulator({
      personality: 'riverty',
      port: s.rivertyPort,
      host: HOST,
      partnerId: RIVERTY_ID,
      hubId: HUB_ID,
      clientId: RIVERTY_CLIENT_ID,
      clientSecret: secrets.rivertyClientSecret,
      seed: s.seed + 1,
      stepMs: s.stepMs,
      log: s.verbose ? (m) => console.log(`[riverty-sim] ${m}`) : undefined,
    });
    await riverty.start().catch((err) => {
      throw listenError(err, s.rivertyPort, 'riverty agency simulator', 'DEMO_RIVERTY_SIM_PORT');
    });
    // History first, live afterwards: the agencies hold their cases while months of webhooks land,
    // then work them in real time.
    sim.pause();
    riverty.pause();

    hub = await createHub({ config, role: 'all', logger: createLogger({ level: config.hub.logLevel }) });
    await hub.listen(s.hubPort, HOST).catch((err) => {
      throw listenError(err, s.hubPort, 'hub', 'PORT');
    });
    await hub.startBackground();
    const shownDir = path.relative(process.cwd(), s.dataDir);
    log(`hub ${hubUrl} (embedded database in ${shownDir && !shownDir.startsWith('..') ? `./${shownDir}` : s.dataDir}, in-process queue)`);
    log(`agency simulator ${simUrl} (partner ${PARTNER_ID} for acme: reference protocol, pushes; seed ${s.seed}, a lifecycle step every ${s.stepMs} ms)`);
    log(`agency simulator ${rivertyUrl} (partner ${RIVERTY_ID} for globex: riverty personality, OAuth2, pulled every ${RIVERTY_PULL_SECONDS} s)`);
    log(`fake PSP APIs: Mollie ${mollieApiBase}, GoCardless ${gocardlessUrl} (acme's apiBase)`);

    const events = generateDemoEvents({ now: new Date(), seed: s.seed });
    const data = summarizeDemoEvents(events);
    const perPsp = DEMO_PSPS.map((p) => `${p} ${data.byPsp[p].webhooks}`).join(', ');
    log(
      `replaying ${events.length} webhooks (${perPsp}) in time order: ${data.customers.acme} acme and ${data.customers.globex} globex customers, ` +
        `${data.invoices} invoices over the last months, ${data.duplicates} delivered twice`,
    );
    const sync = new FakeSync(hub, fakes, () => stopping);
    const { sent, refused, counts } = await replay(events, hubUrl, secrets, sync, log, () => stopping);
    if (stopping) return;
    for (const r of refused.slice(0, 5)) console.error(`[demo] webhook refused: ${r}`);

    let drain = await waitForDrain(hub, log);
    if (stopping) return;
    await sim.pushesSettled();
    const agencies: DemoAgency[] = [
      { id: PARTNER_ID, merchant: 'acme', sim, url: simUrl, how: 'reference protocol, JWT both ways, pushed' },
      { id: RIVERTY_ID, merchant: 'globex', sim: riverty, url: rivertyUrl, how: `riverty personality, OAuth2 client credentials, pulled every ${RIVERTY_PULL_SECONDS} s` },
    ];
    if (drain.drained) {
      const worked = await workArrangements(hub, agencies, log, () => stopping);
      if (stopping) return;
      drain = await waitForDrain(hub, log);
      if (!worked) drain = { ...drain, drained: false };
    }
    const summary = await buildSummary(hub, agencies, s, secrets, config, events, sent, counts, drain);
    console.log(summary);

    if (refused.length > 0 || !drain.drained) {
      const problem = refused.length > 0 ? `${refused.length} webhook(s) were refused` : `the outbox did not drain within ${DRAIN_TIMEOUT_MS / 1000} s`;
      if (s.once) return void (await stop(1, `failed: ${problem}`));
      log(`warning: ${problem}`);
    }
    if (s.once) return void (await stop(0));

    sim.resume();
    riverty.resume();
    log(`running: the agencies now work their cases; refagency pushes each step, the hub pulls riverty's feed every ${RIVERTY_PULL_SECONDS} s. Ctrl-C to stop.`);
    let lastStatus = '';
    const status = setInterval(
      () =>
        void liveStatus(hub!, [sim!, riverty!]).then((line) => {
          if (line !== lastStatus) log(line);
          lastStatus = line;
        }, () => undefined),
      STATUS_EVERY_MS,
    );
    status.unref(); // the HTTP servers keep the process up until a signal
  } catch (err) {
    // A signal arrived mid-way (a request to the closing hub failed): stop() exits.
    if (stopping) return;
    if (err instanceof DemoError) {
      console.error(`[demo] ${err.message}`);
      await stop(1);
    }
    throw err;
  }
}

async function liveStatus(hub: Hub, sims: AgencySimulator[]): Promise<string> {
  const byStatus = new Map<string, number>();
  for (const sim of sims) for (const c of sim.cases()) byStatus.set(c.status, (byStatus.get(c.status) ?? 0) + 1);
  const hubCases = await groupCounts(hub, `SELECT status AS key, count(*) AS n FROM cases GROUP BY status ORDER BY count(*) DESC, status`);
  const agency = [...byStatus].sort((a, b) => b[1] - a[1]).map(([k, n]) => ({ key: k, n }));
  const settled = sims.every((sim) => sim.cases().every((c) => c.finalized)) ? ' — every case has ended; the API stays up until Ctrl-C' : '';
  const updates = sims.reduce((n, sim) => n + sim.updates().length, 0);
  return `agencies: ${countsLine(agency)} (${updates} updates) | hub cases: ${countsLine(hubCases)}${settled}`;
}

/** One agency simulator and the merchant whose partner it is. */
interface DemoAgency {
  id: string;
  merchant: DemoMerchant;
  sim: AgencySimulator;
  url: string;
  how: string;
}

/**
 * Lets each agency work its first cases into a payment arrangement, now rather than in step-ms:
 * the first is paid off instalment by instalment (paid via arrangement), the others get as far as
 * two of three instalments paid. Then waits until the hub shows what the agency collected (pushed
 * by refagency; pulled from riverty's feed). False when the hub did not catch up in time.
 */
async function workArrangements(hub: Hub, agencies: DemoAgency[], log: (m: string) => void, stopped: () => boolean): Promise<boolean> {
  const worked: { agency: DemoAgency; partnerRef: string; caseId: string }[] = [];
  for (const agency of agencies) {
    const picked = await hub.ctx.db.query<{ id: string; partner_ref: string }>(
      `SELECT id, partner_ref FROM cases WHERE partner_id = $1 AND partner_ref IS NOT NULL AND status = 'submitted' ORDER BY opened_at, id LIMIT $2`,
      [agency.id, ARRANGEMENT_CASES],
    );
    picked.rows.forEach((c, i) => {
      agency.sim.setScenario(c.partner_ref, 'arrangement');
      // in_collection, arrangement agreed, then instalments: all of them for the first case, two for the others.
      const steps = i === 0 ? 12 : 4;
      for (let k = 0; k < steps && !agency.sim.case(c.partner_ref).finalized; k++) agency.sim.step(c.partner_ref);
      worked.push({ agency, partnerRef: c.partner_ref, caseId: c.id });
    });
    log(`${agency.id}: worked ${picked.rows.length} case(s) into a payment arrangement`);
  }
  await agencies[0].sim.pushesSettled();
  const started = Date.now();
  for (;;) {
    let behind = 0;
    for (const w of worked) {
      const atAgency = w.agency.sim.case(w.partnerRef).amountCollected.value;
      const r = await hub.ctx.db.query<{ n: number | string }>(`SELECT coalesce(sum(amount_collected), 0) AS n FROM claims WHERE case_id = $1`, [w.caseId]);
      if (Number(r.rows[0].n) !== atAgency) behind++;
    }
    if (behind === 0) return true;
    if (stopped()) return false;
    if (Date.now() - started > SYNC_TIMEOUT_MS) {
      log(`warning: the hub has not caught up with ${behind} worked case(s) within ${SYNC_TIMEOUT_MS / 1000} s`);
      return false;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Invoices due for hand-over by the merchant's policy that the debtor's notice term still holds back (country rules). */
interface GatedInvoice {
  merchant: string;
  ref: string;
  country: string;
  handoverDueAt: Date;
  gateEndsAt: Date;
}

async function noticeGated(hub: Hub, config: HubConfig, now: Date): Promise<GatedInvoice[]> {
  const rules = loadCountryRules();
  const r = await hub.ctx.db.query<{ merchant_id: string; provider_ref: string; handover_due_at: Date | null; first_failed_at: Date | null; created_at: Date; reminder_sent_at: Date | null; country: string | null; type: 'consumer' | 'business' }>(
    `SELECT i.merchant_id, i.provider_ref, i.handover_due_at, i.first_failed_at, i.created_at, i.reminder_sent_at, c.country, c.type
       FROM invoices i JOIN customers c ON c.id = i.customer_id
      WHERE i.status = 'pending_handover' AND i.failure_final ORDER BY i.first_failed_at, i.id`,
  );
  const out: GatedInvoice[] = [];
  for (const row of r.rows) {
    const merchant = config.merchants.find((m) => m.id === row.merchant_id);
    if (!merchant?.policy.countryRules || !row.handover_due_at) continue;
    const country = row.country ?? merchant.country;
    const rule = ruleFor(rules, country, row.type);
    // As src/pipeline/handover-check.ts: the reported reminder, else the merchant's declared dunning day.
    const g = invoiceNoticeGate(rule, row, merchant.policy);
    const gate = g.kind === 'ends' ? g.at : null;
    const due = new Date(row.handover_due_at);
    if (gate && gate > now && due <= now) out.push({ merchant: row.merchant_id, ref: row.provider_ref, country, handoverDueAt: due, gateEndsAt: gate });
  }
  return out;
}

const euros = (minor: number, currency = 'EUR') => `${currency} ${(minor / 100).toFixed(2)}`;
const day = (d: Date) => d.toISOString().slice(0, 16).replace('T', ' ');

/** `n` of each key of a `provider, key, n` grouping, per provider. */
async function countsByProvider(hub: Hub, sql: string): Promise<Map<string, { key: string; n: number }[]>> {
  const r = await hub.ctx.db.query<{ provider: string; key: string; n: number | string }>(sql);
  const out = new Map<string, { key: string; n: number }[]>();
  for (const row of r.rows) out.set(row.provider, [...(out.get(row.provider) ?? []), { key: row.key, n: Number(row.n) }]);
  return out;
}

async function buildSummary(
  hub: Hub,
  agencies: DemoAgency[],
  s: DemoSettings,
  secrets: Secrets,
  config: HubConfig,
  events: DemoEvent[],
  sent: number,
  counts: ReplayCounts,
  drain: { drained: boolean; later: number },
): Promise<string> {
  const hubUrl = `http://${HOST}:${s.hubPort}`;
  const simUrl = `http://${HOST}:${s.simPort}`;
  const data = summarizeDemoEvents(events);
  const now = new Date();
  const token = (merchantId: string) => issueMerchantToken({ hubId: HUB_ID, secret: secrets.merchantToken, merchantId, ttlSeconds: config.auth.merchantTokenTtlSeconds });
  const tokens: Record<DemoMerchant, string> = { acme: token('acme'), globex: token('globex') };
  const tokenVar = (m: DemoMerchant) => `$${m.toUpperCase()}_TOKEN`;

  const stored = await hub.ctx.db.query<{ n: string; deliveries: string }>(`SELECT count(*) AS n, coalesce(sum(deliveries), 0) AS deliveries FROM inbound_events`);
  const invoicesBy = (m: string) => groupCounts(hub, `SELECT status AS key, count(*) AS n FROM invoices WHERE merchant_id = $1 GROUP BY status ORDER BY count(*) DESC, status`, [m]);
  const casesBy = (m: string) => groupCounts(hub, `SELECT status AS key, count(*) AS n FROM cases WHERE merchant_id = $1 GROUP BY status ORDER BY count(*) DESC, status`, [m]);
  const claims = await hub.ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM claims`);
  const dead = await hub.ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE status = 'dead'`);
  const simCases = agencies.flatMap((a) => a.sim.cases());
  const simClaims = simCases.reduce((n, c) => n + c.claims.length, 0);

  // Per PSP, from the hub's own tables: what it stored and how it processed it, the invoices'
  // states, and the invoices it handed to the agency (claims) in how many cases.
  const inboundByPsp = await countsByProvider(hub, `SELECT provider, status AS key, count(*) AS n FROM inbound_events GROUP BY provider, status ORDER BY provider, count(*) DESC, status`);
  const invoicesByPsp = await countsByProvider(hub, `SELECT provider, status AS key, count(*) AS n FROM invoices GROUP BY provider, status ORDER BY provider, count(*) DESC, status`);
  const handedOver = await hub.ctx.db.query<{ provider: string; invoices: number | string; cases: number | string }>(
    `SELECT i.provider, count(DISTINCT cl.invoice_id) AS invoices, count(DISTINCT cl.case_id) AS cases
       FROM claims cl JOIN invoices i ON i.id = cl.invoice_id GROUP BY i.provider`,
  );
  const handedOverBy = new Map(handedOver.rows.map((r) => [r.provider, { invoices: Number(r.invoices), cases: Number(r.cases) }]));

  const get = async (p: string, t: string) => {
    const r = await fetch(`${hubUrl}${p}`, { headers: { authorization: `Bearer ${t}` } });
    return { status: r.status, body: (await r.json().catch(() => null)) as any };
  };
  const lines: string[] = [];
  const rule = '─'.repeat(78);
  lines.push('', rule, ' collection-hub demo — summary', rule);
  lines.push(`${pad('events sent:')}${sent} (${data.duplicates} duplicates; the hub stored ${Number(stored.rows[0].n)} events, ${Number(stored.rows[0].deliveries) - Number(stored.rows[0].n)} repeat deliveries)`);
  lines.push(`${pad('customers:')}acme ${data.customers.acme}, globex ${data.customers.globex}`);
  lines.push(`${pad('invoices:')}${data.invoices}`);
  for (const m of DEMO_MERCHANTS) lines.push(`${pad(`  ${m} invoices:`)}${countsLine(await invoicesBy(m))}`);
  for (const m of DEMO_MERCHANTS) lines.push(`${pad(`  ${m} cases (hub):`)}${countsLine(await casesBy(m))}`);
  lines.push(`${pad('cases at agencies:')}${simCases.length} (${simClaims} claims; the hub holds ${Number(claims.rows[0].n)} claims)`);
  lines.push(`${pad('outbox:')}${drain.drained ? 'drained' : 'NOT drained'}; ${drain.later} hand-over check(s) scheduled for later (inside the 14-day period); ${Number(dead.rows[0].n)} dead-lettered`);

  lines.push('', ' Per PSP (webhooks sent → accepted by the hub → stored and processed; invoices handed to the agency):', '');
  for (const psp of DEMO_PSPS) {
    const p = data.byPsp[psp];
    const customers = Object.entries(p.customers).map(([m, n]) => `${m} ${n}`).join(', ');
    const total = Object.values(p.customers).reduce((a, n) => a + (n ?? 0), 0);
    const inbound = inboundByPsp.get(psp) ?? [];
    const storedN = inbound.reduce((a, r) => a + r.n, 0);
    const cases = handedOverBy.get(psp) ?? { invoices: 0, cases: 0 };
    lines.push(
      `${pad(`  ${psp}:`)}${total} customers (${customers}); ${counts[psp].sent} webhooks sent, ${counts[psp].accepted} accepted; ` +
        `hub: ${storedN} events stored (${countsLine(inbound)}); ${cases.invoices} invoices in ${cases.cases} cases`,
    );
    lines.push(`${pad('      event types:')}${countsLine(Object.entries(p.byType).map(([key, n]) => ({ key, n })))}`);
    lines.push(`${pad('      invoices:')}${countsLine(invoicesByPsp.get(psp) ?? [])}`);
  }

  const gated = await noticeGated(hub, config, now);
  lines.push('', ' Per agency (cases the hub handed over; what the agency reported back; country rules):', '');
  const arrangementExamples: { merchant: DemoMerchant; customer: string; invoice: string }[] = [];
  for (const a of agencies) {
    const cases = await groupCounts(hub, `SELECT status AS key, count(*) AS n FROM cases WHERE partner_id = $1 GROUP BY status ORDER BY count(*) DESC, status`, [a.id]);
    const invoiceStatuses = await groupCounts(
      hub,
      `SELECT i.status AS key, count(DISTINCT i.id) AS n FROM invoices i JOIN claims cl ON cl.invoice_id = i.id JOIN cases c ON c.id = cl.case_id
        WHERE c.partner_id = $1 GROUP BY i.status ORDER BY count(DISTINCT i.id) DESC, i.status`,
      [a.id],
    );
    const atAgency = a.sim.cases();
    const agencyStatuses = new Map<string, number>();
    for (const c of atAgency) agencyStatuses.set(c.status, (agencyStatuses.get(c.status) ?? 0) + 1);
    const nCases = cases.reduce((n, r) => n + r.n, 0);
    lines.push(`  ${a.id} (${a.how}) for ${a.merchant}, ${a.url}:`);
    lines.push(`${pad2(`    cases:`)}${nCases} at the hub (${countsLine(cases)}); ${atAgency.length} at the agency (${countsLine([...agencyStatuses].map(([key, n]) => ({ key, n })))})`);
    lines.push(`${pad2(`    statuses:`)}invoices ${countsLine(invoiceStatuses)}`);

    // Arrangements, with the instalments paid, as the merchant API's customer picture shows them.
    const arranged = await hub.ctx.db.query<{ customer_id: string; merchant_id: string; provider_ref: string; cref: string }>(
      `SELECT DISTINCT i.customer_id, i.merchant_id, i.provider_ref, cu.provider_ref AS cref FROM invoices i
         JOIN claims cl ON cl.invoice_id = i.id JOIN cases c ON c.id = cl.case_id JOIN customers cu ON cu.id = i.customer_id
        WHERE c.partner_id = $1 AND (i.arrangement IS NOT NULL OR cl.arrangement IS NOT NULL) ORDER BY i.provider_ref`,
      [a.id],
    );
    const states = new Map<string, number>();
    let instalments = 0;
    let underArrangement = 0;
    for (const customerId of new Set(arranged.rows.map((r) => r.customer_id))) {
      const picture = await loadCustomerPicture(hub.ctx.db, a.merchant, customerId);
      for (const x of picture.arrangements.filter((p) => p.partner === a.id)) {
        states.set(x.state, (states.get(x.state) ?? 0) + 1);
        instalments += x.paid.length;
        underArrangement++;
      }
    }
    if (arranged.rows[0]) arrangementExamples.push({ merchant: a.merchant, customer: arranged.rows[0].cref, invoice: arranged.rows[0].provider_ref });
    lines.push(`${pad2(`    arrangements:`)}${underArrangement} invoices (${countsLine([...states].map(([key, n]) => ({ key, n })))}), ${instalments} instalments paid`);

    // Statutory collection costs: computed by the hub (country rules), sent with the case.
    const costs = await hub.ctx.db.query<{ n: number | string; total: number | string | null; currency: string | null }>(
      `SELECT count(*) AS n, sum(collection_costs) AS total, min(currency) AS currency FROM cases WHERE partner_id = $1 AND collection_costs IS NOT NULL`,
      [a.id],
    );
    const bases = await groupCounts(
      hub,
      `SELECT CASE WHEN collection_costs_basis LIKE '%WIK%' THEN 'NL WIK' WHEN collection_costs_basis LIKE '%RVG%' THEN 'DE RVG'
                   WHEN collection_costs_basis LIKE '%Book XIX%' THEN 'BE Book XIX' ELSE 'other' END AS key, count(*) AS n
         FROM cases WHERE partner_id = $1 AND collection_costs IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1`,
      [a.id],
    );
    const sentWithCosts = atAgency.filter((c) => c.collectionCosts).length;
    const nCosts = Number(costs.rows[0].n);
    lines.push(
      `${pad2(`    collection costs:`)}${nCosts} cases, ${euros(Number(costs.rows[0].total ?? 0), costs.rows[0].currency ?? 'EUR')}; ${sentWithCosts} cases at the agency carry them` +
        (nCosts ? ` (${countsLine(bases)})` : ''),
    );

    const mine = gated.filter((g) => config.merchants.find((m) => m.id === g.merchant)?.partner === a.id);
    lines.push(
      `${pad2(`    notice gate:`)}${mine.length} invoices waiting` +
        (mine.length ? ` (${[...new Set(mine.map((g) => g.country))].join(', ')} consumers: hand-over period over, the 14-day letter term runs until ${day(mine[0].gateEndsAt)} UTC)` : ''),
    );
  }

  lines.push('', ' Where to look (tokens valid 8 h; secrets are new each run):', '');
  lines.push(`  export HUB=${hubUrl}`);
  lines.push(`  export ACME_TOKEN=${tokens.acme}`);
  lines.push(`  export GLOBEX_TOKEN=${tokens.globex}`);
  lines.push('');
  lines.push(`  open ${hubUrl}/dashboard/#token=${tokens.acme}   (the merchant dashboard as acme; or open ${hubUrl}/dashboard/ and paste $ACME_TOKEN)`);
  lines.push('');
  lines.push(`  curl -H "Authorization: Bearer $ACME_TOKEN" ${hubUrl}/v1/cases`);
  lines.push(`  curl -H "Authorization: Bearer $ACME_TOKEN" "${hubUrl}/v1/cases?status=submitted"`);
  lines.push(`  curl -H "Authorization: Bearer $GLOBEX_TOKEN" ${hubUrl}/v1/cases`);
  lines.push(`  curl -H "Authorization: Bearer $ACME_TOKEN" ${hubUrl}/v1/sync-log`);
  lines.push(`  curl -H "Authorization: Bearer $ACME_TOKEN" ${hubUrl}/v1/reports/leakage`);
  lines.push(`  curl ${hubUrl}/metrics`);
  lines.push(`  curl ${hubUrl}/readyz`);
  for (const a of agencies) lines.push(`  curl ${a.url}/_sim/cases          (${a.id}: the agency's side, no auth)`);
  lines.push(`  curl ${simUrl}/_sim/updates`);

  lines.push('', ' One customer per PSP whose payment failed for good:', '');
  for (const psp of DEMO_PSPS) {
    const merchant = merchantOf(events, psp);
    const example = merchant ? exampleCustomer(events, merchant, psp) : null;
    if (!merchant || !example) continue;
    const cust = await get(`/v1/customers/${encodeURIComponent(example.customer)}`, tokens[merchant]);
    const inv = await get(`/v1/invoices/${encodeURIComponent(example.invoice)}`, tokens[merchant]);
    const failure = inv.body?.failure ? `${inv.body.failure.code} → ${inv.body.failure.reason}` : 'n/a';
    const what = example.story === 'sepa_return' ? ', a returned SEPA debit' : '';
    // The debtor as the hub knows it: Adyen notifications name the shopper only by reference and email.
    const who = cust.body?.name ?? `${example.customer} (no name from ${psp})`;
    lines.push(`${pad(`  ${psp} (${merchant}):`)}${who}${what}: customer ${cust.status}, invoice ${inv.body?.status ?? inv.status} (failure ${failure}), case ${inv.body?.case?.id ?? 'none'}`);
    // The payment-behaviour flags of the customer view (README "Payment behaviour profile"): each says why.
    const flags = (cust.body?.profile?.flags ?? []) as { name: string; why: string }[];
    if (!flags.length) lines.push('    flags: none');
    for (const f of flags) lines.push(`    flag ${f.name}: ${f.why}`);
    lines.push(`    curl -H "Authorization: Bearer ${tokenVar(merchant)}" ${hubUrl}/v1/customers/${example.customer}`);
    lines.push(`    curl -H "Authorization: Bearer ${tokenVar(merchant)}" ${hubUrl}/v1/invoices/${example.invoice}`);
    lines.push(`    curl -H "Authorization: Bearer ${tokenVar(merchant)}" "${hubUrl}/v1/sync-log?customer=${example.customer}"`);
  }
  const revoked = events.find((e) => e.story === 'mandate_cancelled' && e.type.startsWith('mandates.'));
  if (revoked) {
    const cust = await get(`/v1/customers/${encodeURIComponent(revoked.customer)}`, tokens[revoked.merchant]);
    lines.push(`${pad(`  mandate cancelled:`)}${cust.body?.name ?? revoked.customer} (${revoked.psp}, ${revoked.merchant}): mandateStatus ${cust.body?.mandateStatus ?? 'n/a'}, no case`);
    lines.push(`    curl -H "Authorization: Bearer ${tokenVar(revoked.merchant)}" ${hubUrl}/v1/customers/${revoked.customer}`);
  }

  lines.push('', ' A payment arrangement and an invoice held by the notice gate, through the merchant API:', '');
  for (const ex of arrangementExamples) {
    const cust = await get(`/v1/customers/${encodeURIComponent(ex.customer)}`, tokens[ex.merchant]);
    const plan = (cust.body?.arrangements ?? [])[0] as { ref: string; state: string; installments: number | null; installmentAmount: { value: number; currency: string } | null; paid: unknown[]; collected: { value: number; currency: string } } | undefined;
    lines.push(
      `${pad2(`arrangement (${ex.merchant}):`)}customer ${cust.status}` +
        (plan
          ? `, invoice ${plan.ref} ${plan.state}: ${plan.installments} instalments of ${plan.installmentAmount ? euros(plan.installmentAmount.value, plan.installmentAmount.currency) : 'n/a'}, ${plan.paid.length} paid, ${euros(plan.collected.value, plan.collected.currency)} collected`
          : ', no arrangement in the answer'),
    );
    lines.push(`    curl -H "Authorization: Bearer ${tokenVar(ex.merchant)}" ${hubUrl}/v1/customers/${ex.customer}`);
  }
  const held = gated[0];
  if (held) {
    const m = held.merchant as DemoMerchant;
    const inv = await get(`/v1/invoices/${encodeURIComponent(held.ref)}`, tokens[m]);
    lines.push(
      `${pad2(`notice gate (${m}):`)}invoice ${held.ref} → ${inv.status}, ${inv.body?.status ?? 'n/a'}, case ${inv.body?.case?.id ?? 'none'}: ` +
        `hand-over due ${day(held.handoverDueAt)} UTC, held until ${day(held.gateEndsAt)} UTC (${held.country} consumer, 14-day letter)`,
    );
    lines.push(`    curl -H "Authorization: Bearer ${tokenVar(m)}" ${hubUrl}/v1/invoices/${held.ref}`);
    lines.push(`    curl -X POST -H "Authorization: Bearer ${tokenVar(m)}" -H 'content-type: application/json' -d '{"sentAt":"${new Date(held.handoverDueAt.getTime() - 14 * 86_400_000).toISOString().slice(0, 10)}"}' ${hubUrl}/v1/invoices/${held.ref}/reminder   (had your letter gone out on the day of the failure, not 3 days after it, the term would end sooner; a date before the invoice fell due is refused)`);
  }

  const isolationExample = exampleCustomer(events, 'acme', 'stripe');
  if (isolationExample) {
    const isolation = await get(`/v1/customers/${isolationExample.customer}`, tokens.globex);
    lines.push('');
    lines.push(`  Tenant isolation — globex asking for acme's customer:`);
    lines.push(`  curl -H "Authorization: Bearer $GLOBEX_TOKEN" ${hubUrl}/v1/customers/${isolationExample.customer}`);
    lines.push(`      → ${isolation.status}${isolation.status === 404 ? ' (checked: globex cannot see acme data)' : ' (UNEXPECTED: should be 404)'}`);
    // Screening a sign-up (README "Screening a sign-up"): that customer's e-mail, screened by acme and by globex.
    const email = (await get(`/v1/customers/${isolationExample.customer}`, tokens.acme)).body?.email as string | undefined;
    if (email) {
      const screen = async (t: string) => (await (await fetch(`${hubUrl}/v1/screening`, { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: JSON.stringify({ email }) })).json()) as any;
      const [mine, theirs] = [await screen(tokens.acme), await screen(tokens.globex)];
      const found = (mine.debtors ?? []).map((d: any) => `${d.id} by ${d.matchedBy.join(', ')}, flags on: ${d.flags.filter((f: any) => f.on).map((f: any) => f.name).join(', ') || 'none'}`);
      lines.push(`  Screening a sign-up with that customer's e-mail (matched by salted hashes only):`);
      lines.push(`  curl -X POST -H "Authorization: Bearer $ACME_TOKEN" -H 'content-type: application/json' -d '{"email":"${email}"}' ${hubUrl}/v1/screening`);
      lines.push(`      → acme: ${mine.match ? found.join('; ') : 'no match (UNEXPECTED)'}; globex: ${theirs.match === false ? 'no match (checked: screening never crosses merchants)' : 'UNEXPECTED: a match'}`);
    }
  }
  lines.push(rule, '');
  return lines.join('\n');
}

main().catch((err) => {
  console.error(`[demo] failed: ${(err as Error).message}`);
  process.exit(1);
});
