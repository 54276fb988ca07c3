/**
 * A whole stack on loopback for end-to-end tests: the agency simulator and the hub over real
 * HTTP, in embedded mode (in-memory PGlite + in-process queue) or services mode (a fresh
 * PostgreSQL database + BullMQ on the machine's Redis).
 */
import net from 'node:net';
import { parseConfig, type HubConfig } from '../../src/config/load';
import { createHub, type Hub, type HubRole } from '../../src/hub';
import { createLogger } from '../../src/observability/logger';
import { createPglite } from '../../src/store/pglite';
import { createAgencySimulator, type AgencySimulator, type AgencySimulatorOptions } from '../../sim/agency-sim/simulator';
import { issueMerchantToken } from '../../src/http/merchant-auth';
import { signStripe } from '../../sim/psp/stripe-events';
import { createTestDatabase, REDIS_URL, uniquePrefix } from './services';
import { testSecret } from './secrets';
import type { Clock } from '../../src/domain/clock';

export type Mode = 'embedded' | 'services';

/** Drawn fresh for each test file (./secrets.ts): the hub refuses weak or published secrets. */
export const SECRETS = {
  merchantToken: testSecret('merchantToken'),
  /** hub.identifierHashSecret: the key of screening's salted hashes. */
  identifierHash: testSecret('identifierHash'),
  hubToAgency: testSecret(),
  agencyToHub: testSecret(),
  stripe: { acme: testSecret('stripeWebhook'), globex: testSecret('stripeWebhook') },
  /** OAuth2 client secret of the hub at the riverty-personality simulator. */
  rivertyClient: testSecret('clientSecret'),
};

/** Which agency the stack runs: the reference protocol, or the Riverty-shaped one (OAuth2, pull only). */
export type Personality = 'reference' | 'riverty';

/** The partner id each personality gets in the hub's config. */
export const PARTNER_IDS: Record<Personality, string> = { reference: 'refagency', riverty: 'riverty' };

/** The riverty partner block (connectors/agency/riverty/schema.ts), as an item of `partners:`. */
export function rivertyPartnerYaml(o: { simUrl: string; pullEverySeconds?: number; gapGraceSeconds?: number }): string {
  return `  - id: ${PARTNER_IDS.riverty}
    connector: riverty
    name: Riverty (simulated)
    baseUrl: ${o.simUrl}
    clientId: collection-hub
    clientSecret: ${SECRETS.rivertyClient}
    timeoutMs: 2000
    pull: { everySeconds: ${o.pullEverySeconds ?? 1}, limit: 100${o.gapGraceSeconds !== undefined ? `, gapGraceSeconds: ${o.gapGraceSeconds}` : ''} }`;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface StackOptions {
  mode: Mode;
  handoverAfterDays?: number;
  minAmount?: number;
  stackWindowDays?: number;
  pullEverySeconds?: number;
  sim?: Partial<AgencySimulatorOptions>;
  clock?: Clock;
  delivery?: Partial<HubConfig['delivery']>;
  /** Extra YAML appended under the acme stripe block (e.g. apiBase). */
  stripeExtra?: string;
  /**
   * More PSP blocks for merchant acme, as YAML at the indentation of `stripe:` (6 spaces), e.g.
   * `      mollie:\n        apiKey: test_x\n        apiBase: http://127.0.0.1:1234/v2/`.
   */
  acmeProviders?: string;
  /** Apply the country rules (notice gate, statutory costs); off by default so tests hand over at once. */
  countryRules?: boolean;
  /** How the hub signs its calls to the agency (RS256/ES256: the hub's key, fetched by the agency from the JWKS). */
  outboundAlg?: 'HS256' | 'RS256' | 'ES256';
  /** false: the agency never pushes; updates come only by the scheduled pull. */
  push?: boolean;
  /**
   * riverty: the simulator plays the Riverty-shaped agency (`--personality riverty`) and the hub's
   * partner is `id: riverty, connector: riverty` (OAuth2 client credentials, pulled every
   * `pullEverySeconds`, default 1; never pushed). Default reference: everything as before.
   */
  personality?: Personality;
  /** riverty: how long the cursor waits at a hole in the sortNumbers (`pull.gapGraceSeconds`). */
  gapGraceSeconds?: number;
  /**
   * Extra YAML for merchant acme's block, at its key indentation (4 spaces), e.g.
   * `    writeBack: { stripe: { markUncollectible: true } }`.
   */
  acmeExtra?: string;
  /** Policy keys set on a merchant after parsing (e.g. `{ acme: { dunningLetterAfterDays: 0 } }`). */
  policy?: Record<string, Record<string, unknown>>;
  /** Extra YAML for the partner's block, at its key indentation (4 spaces), e.g. `    debtorFields: [country]`. */
  partnerExtra?: string;
  /**
   * The address the hub calls the agency at, given the simulator's (e.g. a recording proxy in front
   * of it); default the simulator's own.
   */
  agencyUrl?: (simUrl: string) => string | Promise<string>;
}

export function testConfigYaml(o: { simUrl: string; hubPort: number; handoverAfterDays: number; minAmount: number; stackWindowDays: number; pullEverySeconds?: number; stripeExtra?: string; outboundAlg?: string; acmeProviders?: string; countryRules?: boolean; acmeExtra?: string; partnerExtra?: string; partnerId?: string; partnersYaml?: string }): string {
  const partner = o.partnerId ?? PARTNER_IDS.reference;
  const outbound = !o.outboundAlg || o.outboundAlg === 'HS256' ? `{ alg: HS256, secret: ${SECRETS.hubToAgency} }` : `{ alg: ${o.outboundAlg} }`;
  return `
hub: { id: collection-hub, publicUrl: "http://127.0.0.1:${o.hubPort}", port: ${o.hubPort}, host: 127.0.0.1, logLevel: error, identifierHashSecret: ${SECRETS.identifierHash} }
auth: { merchantTokenSecret: ${SECRETS.merchantToken} }
delivery: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 2000, reconcileEverySeconds: 1, leaseSeconds: 10, concurrency: 4 }
merchants:
  - id: acme
    name: Acme Subscriptions BV
    country: NL
    providers:
      stripe:
        webhookSecret: ${SECRETS.stripe.acme}
        apiKey: sk_test_acme${o.stripeExtra ?? ''}
${o.acmeProviders ?? ''}
    partner: ${partner}
    policy: { handoverAfterDays: ${o.handoverAfterDays}, minAmount: { value: ${o.minAmount}, currency: EUR }, stackWindowDays: ${o.stackWindowDays}, countryRules: ${o.countryRules ?? false} }
${o.acmeExtra ?? ''}
  - id: globex
    name: Globex GmbH
    country: DE
    providers:
      stripe: { webhookSecret: ${SECRETS.stripe.globex} }
    partner: ${partner}
    policy: { handoverAfterDays: ${o.handoverAfterDays}, minAmount: { value: ${o.minAmount}, currency: EUR }, stackWindowDays: ${o.stackWindowDays}, countryRules: ${o.countryRules ?? false} }
partners:
${o.partnersYaml ?? `  - id: refagency
    connector: reference
    baseUrl: ${o.simUrl}
    timeoutMs: 2000
    auth:
      outbound: ${outbound}
      inbound: { alg: HS256, secret: ${SECRETS.agencyToHub} }
${o.pullEverySeconds ? `    pull: { everySeconds: ${o.pullEverySeconds} }` : ''}`}
${o.partnerExtra ?? ''}
`;
}

export interface Stack {
  hub: Hub;
  hubUrl: string;
  sim: AgencySimulator;
  simUrl: string;
  config: HubConfig;
  token(merchantId: string): string;
  sendStripe(merchantId: 'acme' | 'globex', event: unknown, opts?: { secret?: string; timestamp?: number }): Promise<Response>;
  get(path: string, merchantId?: string): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const hubPort = await freePort();
  const riverty = o.personality === 'riverty';
  const sim = riverty
    ? createAgencySimulator({
        personality: 'riverty',
        partnerId: PARTNER_IDS.riverty,
        hubId: 'collection-hub',
        clientId: 'collection-hub',
        clientSecret: SECRETS.rivertyClient,
        stepMs: 50,
        ...o.sim,
      })
    : createAgencySimulator({
        partnerId: 'refagency',
        hubId: 'collection-hub',
        hubUrl: o.push === false ? undefined : `http://127.0.0.1:${hubPort}`,
        ...(o.outboundAlg && o.outboundAlg !== 'HS256' ? { hubJwksUrl: `http://127.0.0.1:${hubPort}/.well-known/jwks.json` } : { inSecret: SECRETS.hubToAgency }),
        outSecret: SECRETS.agencyToHub,
        stepMs: 50,
        pushBackoffMs: 50,
        ...o.sim,
      });
  const { url: simUrl } = await sim.start(0, '127.0.0.1');
  const env: Record<string, string> = {};
  let dropDb: (() => Promise<void>) | undefined;
  let queuePrefix: string | undefined;
  if (o.mode === 'services') {
    const db = await createTestDatabase();
    env.DATABASE_URL = db.url;
    env.REDIS_URL = REDIS_URL;
    dropDb = db.drop;
    queuePrefix = uniquePrefix();
  }
  const agencyUrl = o.agencyUrl ? await o.agencyUrl(simUrl) : simUrl;
  const config = parseConfig(
    testConfigYaml({ simUrl: agencyUrl, hubPort, handoverAfterDays: o.handoverAfterDays ?? 0, minAmount: o.minAmount ?? 0, stackWindowDays: o.stackWindowDays ?? 45, pullEverySeconds: o.pullEverySeconds, stripeExtra: o.stripeExtra, outboundAlg: o.outboundAlg, acmeProviders: o.acmeProviders, countryRules: o.countryRules, acmeExtra: o.acmeExtra, partnerExtra: o.partnerExtra,
      ...(riverty ? { partnerId: PARTNER_IDS.riverty, partnersYaml: rivertyPartnerYaml({ simUrl: agencyUrl, pullEverySeconds: o.pullEverySeconds, gapGraceSeconds: o.gapGraceSeconds }) } : {}) }),
    env,
  );
  Object.assign(config.delivery, o.delivery ?? {});
  for (const m of config.merchants) Object.assign(m.policy, o.policy?.[m.id] ?? {});
  const db = o.mode === 'embedded' ? await createPglite() : undefined;
  const hub = await createHub({ config, role: 'all' as HubRole, clock: o.clock, db, queuePrefix, logger: createLogger({ silent: process.env.STACK_LOGS !== '1' }) });
  const { url: hubUrl } = await hub.listen(hubPort, '127.0.0.1');
  await hub.startBackground();

  const token = (merchantId: string) => issueMerchantToken({ hubId: 'collection-hub', secret: SECRETS.merchantToken, merchantId, ttlSeconds: 600 });
  return {
    hub, hubUrl, sim, simUrl, config, token,
    async sendStripe(merchantId, event, opts = {}) {
      const { body, header } = signStripe(event, opts.secret ?? SECRETS.stripe[merchantId], opts.timestamp);
      return fetch(`${hubUrl}/v1/webhooks/stripe/${merchantId}`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body });
    },
    async get(path, merchantId = 'acme') {
      const r = await fetch(`${hubUrl}${path}`, { headers: { authorization: `Bearer ${token(merchantId)}` } });
      return { status: r.status, body: await r.json().catch(() => null) };
    },
    async stop() {
      await sim.stop();
      await hub.stop();
      if (db) await db.close();
      if (dropDb) await dropDb();
    },
  };
}
