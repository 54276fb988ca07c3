/**
 * Shared pieces of the security suites (issue 6, guarantees 6–9): a hub on loopback whose logger,
 * rate limits and agency can be chosen (startStack in test/support/stack.ts fixes those), the
 * table of PSPs and how to sign for each, a failing agency that echoes what it was sent, and a
 * raw HTTP client that can pick its source address.
 *
 * Adding a PSP to these suites is one row in PSP_ROWS: its config block, a body it accepts, and
 * how to sign one. A registered connector without a row fails `every registered PSP has a row`.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { parseConfig, type HubConfig } from '../../../src/config/load';
import { createHub, type Hub } from '../../../src/hub';
import { createLogger, type Logger } from '../../../src/observability/logger';
import { createPglite } from '../../../src/store/pglite';
import { issueMerchantToken } from '../../../src/http/merchant-auth';
import { createAgencySimulator, type AgencySimulator, type AgencySimulatorOptions } from '../../../sim/agency-sim/simulator';
import { freePort, SECRETS, testConfigYaml, type Mode } from '../../support/stack';
import { testSecret } from '../../support/secrets';
import { basicAuthHeader } from '../../../sim/psp/adyen-events';
import { createTestDatabase, postgresAvailable, redisAvailable, REDIS_URL, uniquePrefix } from '../../support/services';

export type { Mode };
export const MODES: Mode[] = ['embedded', 'services'];
export const HUB_ID = 'collection-hub';
export const nowS = () => Math.floor(Date.now() / 1000);

/** Embedded mode always runs; services mode needs PostgreSQL and Redis (skipped outside CI, fails under CI). */
export async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

// ---------------------------------------------------------------------------------------------
// PSPs

/** Drawn fresh per test file (test/support/secrets.ts): the hub refuses weak or published secrets. */
export const PSP_SECRETS = {
  adyenHmacKey: testSecret('adyenHmac'),
  adyenWrongKey: testSecret('adyenHmac'),
  /** Adyen's HTTP Basic credentials (required for Adyen since issue 13). */
  adyenBasic: { username: 'ws_acme', password: testSecret('basicAuthPassword') },
  gocardless: testSecret('gocardlessWebhook'),
  mollieSigning: testSecret('mollieWebhook'),
  wrong: testSecret('stripeWebhook'),
};

export interface Signed {
  body: string;
  headers: Record<string, string>;
}

export interface PspRow {
  id: string;
  /** The provider block for merchant acme, as YAML at the indentation of `stripe:` ('' for stripe: already there). */
  acmeYaml: string;
  contentType: string;
  /** A delivery body this PSP's connector accepts once signed; `tag` makes its event id unique. */
  validBody(tag: string): string;
  /** `body` signed with the merchant's secret (`secret: 'wrong'` forges, `'none'` leaves the signature out). */
  sign(body: string, opts?: { secret?: 'right' | 'wrong' | 'none'; timestamp?: number }): Signed;
  /** Seconds after which a signed delivery is refused as stale; undefined: the scheme has no timestamp (replays are deduplicated). */
  toleranceSeconds?: number;
}

const stripeSdk = new Stripe('sk_test_signing_only');
const hmacHex = (body: string, secret: string) => crypto.createHmac('sha256', secret).update(body).digest('hex');

function adyenSign(body: string, key: string | null): string {
  let doc: any;
  try {
    doc = JSON.parse(body);
  } catch {
    return body; // not JSON: nothing to sign (Adyen signs fields, not bytes)
  }
  const items = Array.isArray(doc?.notificationItems) ? doc.notificationItems : [];
  const signatures: string[] = [];
  for (const entry of items) {
    const i = entry?.NotificationRequestItem;
    if (!i || typeof i !== 'object') continue;
    i.additionalData = typeof i.additionalData === 'object' && i.additionalData ? i.additionalData : {};
    if (key === null) {
      delete i.additionalData.hmacSignature;
      continue;
    }
    // Sign whatever the fuzzer put there; a value that cannot even be printed signs as a marker
    // (the connector must refuse it, not crash on it).
    const printable = (v: unknown) => {
      try {
        return v === undefined || v === null ? '' : String(v);
      } catch {
        return '[unprintable]';
      }
    };
    const data = [i.pspReference, i.originalReference, i.merchantAccountCode, i.merchantReference, i.amount?.value, i.amount?.currency, i.eventCode, i.success].map(printable).join(':');
    i.additionalData.hmacSignature = crypto.createHmac('sha256', Buffer.from(key, 'hex')).update(data, 'utf8').digest('base64');
    signatures.push(i.additionalData.hmacSignature);
  }
  try {
    return JSON.stringify(doc);
  } catch {
    // Too deep for JSON.stringify (a hostile-input case): put the signatures into the text as it is.
    let n = 0;
    return body.replace(/"additionalData":\{(\s*\})?/g, (_m, empty?: string) => {
      const sig = signatures[n++];
      if (sig === undefined) return _m;
      return `"additionalData":{"hmacSignature":${JSON.stringify(sig)}${empty ? '}' : ','}`;
    });
  }
}

export const PSP_ROWS: PspRow[] = [
  {
    id: 'stripe',
    acmeYaml: '',
    contentType: 'application/json',
    toleranceSeconds: 300,
    validBody: (tag) =>
      JSON.stringify({ id: `evt_sec_${tag}`, object: 'event', api_version: '2024-06-20', created: nowS(), type: 'customer.updated', livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, data: { object: { id: `cus_sec_${tag}`, object: 'customer' } } }),
    sign: (body, o = {}): Signed => {
      if (o.secret === 'none') return { body, headers: {} };
      const secret = o.secret === 'wrong' ? PSP_SECRETS.wrong : SECRETS.stripe.acme;
      return { body, headers: { 'stripe-signature': stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: o.timestamp }) } };
    },
  },
  {
    id: 'adyen',
    acmeYaml: `      adyen:\n        hmacKeys: "${PSP_SECRETS.adyenHmacKey}"\n        basicAuth: { username: ${PSP_SECRETS.adyenBasic.username}, password: "${PSP_SECRETS.adyenBasic.password}" }\n`,
    contentType: 'application/json',
    validBody: (tag) =>
      JSON.stringify({
        live: 'false',
        notificationItems: [
          { NotificationRequestItem: { pspReference: `PSP${tag}`.slice(0, 40), merchantAccountCode: 'AcmeECOM', merchantReference: `ref_${tag}`, amount: { value: 1000, currency: 'EUR' }, eventCode: 'REPORT_AVAILABLE', eventDate: new Date().toISOString(), success: 'true', additionalData: {} } },
        ],
      }),
    // The Basic credentials are always right: what `secret` varies is the HMAC.
    sign: (body, o = {}): Signed => ({
      body: adyenSign(body, o.secret === 'none' ? null : o.secret === 'wrong' ? PSP_SECRETS.adyenWrongKey : PSP_SECRETS.adyenHmacKey),
      headers: { authorization: basicAuthHeader(PSP_SECRETS.adyenBasic.username, PSP_SECRETS.adyenBasic.password) },
    }),
  },
  {
    id: 'gocardless',
    acmeYaml: `      gocardless:\n        webhookSecret: ${PSP_SECRETS.gocardless}\n        accessToken: sandbox_token_not_used_here\n        apiBase: http://127.0.0.1:9\n`,
    contentType: 'application/json',
    validBody: (tag) => JSON.stringify({ events: [{ id: `EV${tag}`, created_at: new Date().toISOString(), resource_type: 'payouts', action: 'paid', links: { payout: `PO${tag}` } }] }),
    sign: (body, o = {}): Signed => (o.secret === 'none' ? { body, headers: {} } : { body, headers: { 'webhook-signature': hmacHex(body, o.secret === 'wrong' ? PSP_SECRETS.wrong : PSP_SECRETS.gocardless) } }),
  },
  {
    id: 'mollie',
    acmeYaml: `      mollie:\n        apiKey: test_notusedhere0123456789\n        apiBase: http://127.0.0.1:9\n        webhookSigningSecret: ${PSP_SECRETS.mollieSigning}\n`,
    contentType: 'application/json',
    validBody: (tag) => JSON.stringify({ resource: 'event', id: `event_${tag}`, type: 'payment-link.paid', entityId: `pl_${tag}`, createdAt: new Date().toISOString() }),
    sign: (body, o = {}): Signed => (o.secret === 'none' ? { body, headers: {} } : { body, headers: { 'x-mollie-signature': `sha256=${hmacHex(body, o.secret === 'wrong' ? PSP_SECRETS.wrong : PSP_SECRETS.mollieSigning)}` } }),
  },
];

// ---------------------------------------------------------------------------------------------
// A failing agency: answers every call 422 (not retryable: the row goes to the dead letter) with
// an echo of the Authorization header and of the debtor's name, as careless validation errors do,
// and a card number of its own (the hub scrubs card numbers before they leave, so an echo of what it
// sent would carry none: the agency's own card data must still not be kept in clear).

export interface FailingAgency {
  url: string;
  requests: { method: string; path: string; authorization?: string; body: string }[];
  stop(): Promise<void>;
}

/** `statuses`: the answer of the n-th call (the last one repeats), e.g. [503, 503, 422]. */
export async function startFailingAgency(statuses: number | number[] = 422): Promise<FailingAgency> {
  const requests: FailingAgency['requests'] = [];
  const list = Array.isArray(statuses) ? statuses : [statuses];
  const server = http.createServer((req, res) => {
    const status = list[Math.min(requests.length, list.length - 1)];
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, body });
      let name: unknown;
      try {
        name = JSON.parse(body)?.debtor?.name;
      } catch {
        name = undefined;
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'validation_failed', message: `debtor.name ${JSON.stringify(name)} is not acceptable (card on file 4242 4242 4242 4242); you sent Authorization: ${req.headers.authorization}`, received: { authorization: req.headers.authorization, debtorName: name, cardOnFile: '4242424242424242' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    stop: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// The stack

export interface SecureStackOptions {
  mode: Mode;
  /** Overrides of config.rateLimits (the defaults are generous). */
  rateLimits?: Partial<HubConfig['rateLimits']>;
  logger?: Logger;
  /** More PSP blocks for acme (YAML, see PspRow.acmeYaml). */
  acmeProviders?: string;
  outboundAlg?: 'HS256' | 'RS256' | 'ES256';
  /** Point the partner at this URL instead of the agency simulator (e.g. a failing agency). */
  agencyUrl?: string;
  sim?: Partial<AgencySimulatorOptions>;
  maxAttempts?: number;
  /** Last changes to the parsed config before the hub is created (e.g. hub.http, hub.metrics). */
  configure?: (config: HubConfig) => void;
}

export interface SecureStack {
  hub: Hub;
  hubUrl: string;
  /** Where /metrics is served when hub.metrics.port is set. */
  metricsUrl?: string;
  port: number;
  config: HubConfig;
  sim?: AgencySimulator;
  token(merchantId: string): string;
  /** GET with a merchant token; body parsed as JSON when it is. */
  get(path: string, merchantId?: string): Promise<{ status: number; body: any; headers: Headers }>;
  inboundCount(): Promise<number>;
  stop(): Promise<void>;
}

export async function startSecureStack(o: SecureStackOptions): Promise<SecureStack> {
  const port = await freePort();
  let sim: AgencySimulator | undefined;
  let agencyUrl = o.agencyUrl;
  if (!agencyUrl) {
    sim = createAgencySimulator({
      partnerId: 'refagency',
      hubId: HUB_ID,
      hubUrl: `http://127.0.0.1:${port}`,
      ...(o.outboundAlg && o.outboundAlg !== 'HS256' ? { hubJwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json` } : { inSecret: SECRETS.hubToAgency }),
      outSecret: SECRETS.agencyToHub,
      stepMs: 60_000,
      pushBackoffMs: 50,
      ...o.sim,
    });
    agencyUrl = (await sim.start(0, '127.0.0.1')).url;
  }
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
  const config = parseConfig(
    testConfigYaml({ simUrl: agencyUrl, hubPort: port, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45, outboundAlg: o.outboundAlg, acmeProviders: o.acmeProviders }),
    env,
  );
  Object.assign(config.rateLimits, o.rateLimits ?? {});
  config.delivery.maxAttempts = o.maxAttempts ?? 3;
  config.delivery.baseDelayMs = 50;
  config.delivery.maxDelayMs = 500;
  o.configure?.(config);
  const db = o.mode === 'embedded' ? await createPglite() : undefined;
  const hub = await createHub({ config, role: 'all', db, queuePrefix, logger: o.logger ?? createLogger({ silent: true }) });
  const { url: hubUrl, metricsUrl } = await hub.listen(port, '127.0.0.1');
  await hub.startBackground();
  const token = (merchantId: string) => issueMerchantToken({ hubId: HUB_ID, secret: SECRETS.merchantToken, merchantId, ttlSeconds: 600 });
  return {
    hub,
    hubUrl,
    metricsUrl,
    port,
    config,
    sim,
    token,
    async get(path, merchantId = 'acme') {
      const r = await fetch(`${hubUrl}${path}`, { headers: { authorization: `Bearer ${token(merchantId)}` } });
      const text = await r.text();
      let body: any = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      return { status: r.status, body, headers: r.headers };
    },
    async inboundCount() {
      const r = await hub.ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM inbound_events`);
      return Number(r.rows[0].n);
    },
    async stop() {
      if (sim) await sim.stop();
      await hub.stop();
      if (db) await db.close();
      if (dropDb) await dropDb();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP: any method, headers and bytes, from a chosen loopback source address.

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export function send(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string | Buffer; localAddress?: string; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const body = o.body === undefined ? undefined : Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body);
    const req = http.request(
      {
        host: u.hostname,
        port: Number(u.port),
        path: `${u.pathname}${u.search}`,
        method: o.method ?? 'POST',
        localAddress: o.localAddress,
        agent: false,
        headers: { ...(body ? { 'content-length': String(body.length) } : {}), ...o.headers },
        timeout: o.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${o.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/** A refusal as guarantee 6 wants it: a 4xx with `{ error: { code, message } }`. */
export function expectClearRefusal(r: { status: number; json?: any; body?: any }, what: string): void {
  const body = r.json ?? r.body;
  const shape = { what, status: r.status, is4xx: r.status >= 400 && r.status < 500, code: typeof body?.error?.code, message: typeof body?.error?.message };
  expect(shape).toEqual({ what, status: r.status, is4xx: true, code: 'string', message: 'string' });
}

// ---------------------------------------------------------------------------------------------
// Hand-made JWTs: any header, any claims, any key — what an attacker can send.

export const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256-signed token with exactly this header and payload, keyed with `secret` (any bytes). */
export function handMadeHs256(header: object, payload: object, secret: string | Buffer): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** An unsigned token (`alg: none`), with an empty or a decoy signature part. */
export function unsignedToken(payload: object, alg = 'none', signature = ''): string {
  return `${b64url({ alg, typ: 'JWT' })}.${b64url(payload)}.${signature}`;
}
