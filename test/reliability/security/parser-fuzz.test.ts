/**
 * Guarantee 6, property-based: every parser of outside input is fuzzed with fast-check and may
 * only accept or refuse in its own terms — never throw anything else, never answer a 5xx.
 *
 *  - each PSP connector's `verify`: random bytes, strings, headers and content types; random JSON
 *    validly signed (so the parsing after the signature is reached); mutations of a valid event,
 *    validly signed → a VerifiedDelivery or a WebhookRejection with a 4xx, nothing else;
 *  - the agency push verifier: random Authorization headers, random JWTs (any header, any claims)
 *    signed with the right secret, random bodies → AgencyUpdate[] or a PushRejection with a 4xx;
 *  - parseConfig: random text, random documents, mutations of a valid config → HubConfig or ConfigError;
 *  - over HTTP, in both run modes: the merchant API's query parameters and path ids (2xx or a
 *    clear 4xx), and signed PSP events carrying random extra fields (stored or refused, never 5xx).
 *
 * Runs are bounded (numRuns and a time limit per property); a failure prints the seed to replay.
 */
import crypto from 'node:crypto';
import fc from 'fast-check';
import YAML from 'yaml';
import { pspConnectors } from '../../../connectors/registry';
import { WebhookRejection, type InboundRequest, type PspConnector } from '../../../connectors/psp/types';
import { createPushVerifier } from '../../../connectors/agency/reference/verify';
import { PushRejection } from '../../../connectors/agency/types';
import { loadAgencyMapping } from '../../../src/mappings/load';
import { ConfigError, parseConfig } from '../../../src/config/load';
import { SECRETS, testConfigYaml } from '../../support/stack';
import { expectClearRefusal, HUB_ID, modeAvailable, MODES, nowS, PSP_ROWS, send, startSecureStack, type Mode, type PspRow, type SecureStack } from './support';

const RUNS = 200;
const TIME_LIMIT_MS = 20_000;
// FUZZ_SEED=<seed> FUZZ_PATH=<path> replays a failure (both printed with it).
const params = {
  numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false,
  ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED), path: process.env.FUZZ_PATH } : {}),
};
const ROWS = PSP_ROWS.filter((r) => pspConnectors.has(r.id));
const figures: Record<string, number> = {};
const count = (name: string) => (figures[name] = (figures[name] ?? 0) + 1);

afterAll(() => {
  console.log(`[security] fuzz runs: ${Object.entries(figures).map(([k, v]) => `${k}=${v}`).join(', ')}`);
});

/** The hub config the HTTP suites use, with every PSP row configured for acme. */
const validConfigText = testConfigYaml({ simUrl: 'http://127.0.0.1:4010', hubPort: 3000, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45, acmeProviders: ROWS.map((r) => r.acmeYaml).join('') });
const providerConfigs = parseConfig(validConfigText).merchants[0].providers;

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Any bytes, any text (lone surrogates included), any JSON. */
const anyBody = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
  fc.string({ unit: 'binary', maxLength: 512 }).map((s) => Buffer.from(s)),
  fc.jsonValue({ maxDepth: 6 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.constantFrom('', '{}', '[]', 'null', '{"id":', 'id=tr_x', 'events=', '\uFEFF{}').map((s) => Buffer.from(s)),
);
const headerValue = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.stringMatching(/^t=\d{1,12}(,v[01]=[0-9a-f]{0,64}){0,3}$/),
  fc.stringMatching(/^(sha256=)?[0-9a-fA-F]{0,70}$/),
  fc.base64String({ maxLength: 64 }).map((b) => `Basic ${b}`),
);
const contentType = fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain', '', 'application/json; charset=utf-16', 'multipart/form-data');
const SIGNATURE_HEADERS = ['stripe-signature', 'webhook-signature', 'x-mollie-signature', 'authorization'];
const EDGE_HEADERS: Record<string, string>[] = [
  { 'stripe-signature': 't=0,v1=' },
  { 'stripe-signature': 't=,v1=' },
  { 'stripe-signature': 'v1=00' },
  { 'stripe-signature': ',' },
  { 'webhook-signature': '' },
  { 'webhook-signature': ' ' },
  { 'x-mollie-signature': 'sha256=' },
  { 'x-mollie-signature': ',' },
  { authorization: 'Basic ' },
  { authorization: 'Basic Og==' },
];
const anyHeaders = fc.dictionary(fc.constantFrom(...SIGNATURE_HEADERS, 'x-other'), headerValue, { maxKeys: 4 });

/** Every path (list of keys) inside a JSON value, the root included. */
function pathsOf(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...prefix, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out);
  return out;
}

/** `doc` with the value at the n-th path replaced (or deleted when `value` is undefined). */
function mutate(doc: unknown, n: number, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(doc));
  const paths = pathsOf(copy);
  const path = paths[n % paths.length];
  if (path.length === 0) return value === undefined ? null : value;
  let parent: any = copy;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const last = path[path.length - 1];
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else parent[last] = value;
  return copy;
}

const mutation = fc.tuple(fc.nat(), fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }));

// ---------------------------------------------------------------------------------------------

function expectAcceptedOrRejected(outcome: { ok: true; value: any } | { ok: false; error: unknown }, what: string): void {
  if (outcome.ok) {
    const events = outcome.value?.events;
    expect(Array.isArray(events)).toBe(true);
    for (const e of events) {
      expect(typeof e.providerEventId).toBe('string');
      expect(typeof e.eventType).toBe('string');
    }
    return;
  }
  const err = outcome.error;
  if (!(err instanceof WebhookRejection)) {
    throw new Error(`${what}: verify threw ${(err as Error)?.name}: ${(err as Error)?.message} instead of a WebhookRejection`);
  }
  expect(err.status).toBeGreaterThanOrEqual(400);
  expect(err.status).toBeLessThan(500);
}

async function runVerify(connector: PspConnector<any>, req: InboundRequest, config: unknown) {
  try {
    return { ok: true as const, value: await connector.verify(req, config, new Date()) };
  } catch (error) {
    return { ok: false as const, error };
  }
}

describe.each<PspRow>(ROWS)('fuzz: the $id connector verify', (row) => {
  const connector = pspConnectors.get(row.id)!;
  const config = providerConfigs[row.id];
  const signedJson = (body: string): InboundRequest => {
    const s = row.sign(body);
    return { headers: s.headers, rawBody: Buffer.from(s.body), contentType: row.contentType };
  };

  it('takes random bytes, headers and content types: a delivery or a WebhookRejection, nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(anyBody, anyHeaders, contentType, async (rawBody, headers, type) => {
        count(`${row.id}.random`);
        expectAcceptedOrRejected(await runVerify(connector, { headers, rawBody, contentType: type }, config), `${row.id} random`);
      }),
      // Known edge cases first, every run (random search finds them only some of the time).
      { ...params, examples: EDGE_HEADERS.map((h): [Buffer, Record<string, string>, string] => [Buffer.from('[]'), h, 'application/json']) },
    );
  });

  it('takes random JSON, validly signed: a delivery or a WebhookRejection, nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 8 }), async (doc) => {
        count(`${row.id}.signedJson`);
        expectAcceptedOrRejected(await runVerify(connector, signedJson(JSON.stringify(doc) ?? 'null'), config), `${row.id} signed json`);
      }),
      params,
    );
  });

  it('takes mutations of a valid event, validly signed: a delivery or a WebhookRejection, nothing else', async () => {
    const valid = JSON.parse(row.validBody('fuzz'));
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        count(`${row.id}.mutated`);
        let doc: unknown = valid;
        for (const [n, value] of mutations) doc = mutate(doc, n, value);
        expectAcceptedOrRejected(await runVerify(connector, signedJson(JSON.stringify(doc) ?? 'null'), config), `${row.id} mutated`);
      }),
      params,
    );
  });
});

describe('fuzz: the Mollie classic (unsigned form) path', () => {
  const connector = pspConnectors.get('mollie');
  const maybe = connector ? it : it.skip;
  maybe('takes random form bodies: a delivery or a WebhookRejection, nothing else', async () => {
    const config = connector!.configSchema.parse({ apiKey: 'test_notusedhere0123456789' });
    const form = fc.oneof(
      fc.dictionary(fc.constantFrom('id', 'ID', 'id[]', 'x', ''), fc.string({ unit: 'binary', maxLength: 80 }), { maxKeys: 3 }).map((d) => new URLSearchParams(d).toString()),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.stringMatching(/^id=(tr|ord|pl|re|chb|cst|mdt|sub|in)_[A-Za-z0-9%]{0,70}$/),
    );
    await fc.assert(
      fc.asyncProperty(form, contentType, async (body, type) => {
        count('mollie.classic');
        expectAcceptedOrRejected(await runVerify(connector!, { headers: {}, rawBody: Buffer.from(body), contentType: type }, config), 'mollie classic');
      }),
      params,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('fuzz: the agency push verifier', () => {
  const verify = createPushVerifier({ partnerId: 'refagency', hubId: HUB_ID, inbound: { alg: 'HS256', secret: SECRETS.agencyToHub }, mapping: loadAgencyMapping('reference') });
  const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v) ?? 'null').toString('base64url');
  const hs256 = (header: unknown, payload: unknown, secret = SECRETS.agencyToHub) => {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const goodClaims = () => ({ iss: 'refagency', aud: HUB_ID, exp: nowS() + 60, iat: nowS() });

  function expectPushOutcome(run: () => unknown, what: string): void {
    let value: unknown;
    try {
      value = run();
    } catch (err) {
      if (!(err instanceof PushRejection)) throw new Error(`${what}: threw ${(err as Error)?.name}: ${(err as Error)?.message} instead of a PushRejection`);
      expect(err.status).toBeGreaterThanOrEqual(400);
      expect(err.status).toBeLessThan(500);
      return;
    }
    expect(Array.isArray(value)).toBe(true);
  }

  const header = fc.oneof(
    fc.constant({ alg: 'HS256', typ: 'JWT' }),
    fc.record({ alg: fc.constantFrom('none', 'None', 'HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'PS256', ''), typ: fc.constantFrom('JWT', 'jwt', undefined as unknown as string) }, { requiredKeys: [] }),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const claims = fc.oneof(
    fc.constant(null).map(() => goodClaims()),
    fc.record({
      iss: fc.oneof(fc.constant('refagency'), fc.string(), fc.integer()),
      aud: fc.oneof(fc.constant(HUB_ID), fc.string(), fc.array(fc.string(), { maxLength: 3 })),
      exp: fc.oneof(fc.integer({ min: -1e10, max: 1e10 }), fc.constant(nowS() + 60), fc.string(), fc.double()),
      nbf: fc.oneof(fc.integer({ min: -1e10, max: 1e10 }), fc.string()),
      iat: fc.oneof(fc.integer(), fc.string()),
    }, { requiredKeys: [] }),
    fc.jsonValue({ maxDepth: 3 }),
  );
  const updateLike = fc.record({
    id: fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.jsonValue({ maxDepth: 1 })),
    seq: fc.oneof(fc.nat(), fc.double(), fc.string()),
    caseId: fc.string({ maxLength: 20 }),
    caseReference: fc.string({ maxLength: 20 }),
    claimReference: fc.oneof(fc.constant(null), fc.string({ maxLength: 20 })),
    status: fc.oneof(fc.constantFrom('submitted', 'in_collection', 'paid', 'partially_paid', 'arrangement', 'uncollectible', 'withdrawn', 'disputed', 'on_hold', 'closed'), fc.string()),
    reason: fc.option(fc.oneof(fc.constantFrom('paid_in_full', 'debtor_unreachable', 'disputed_by_debtor'), fc.string()), { nil: undefined }),
    amountCollected: fc.option(fc.record({ value: fc.oneof(fc.integer(), fc.double()), currency: fc.string({ maxLength: 4 }) }), { nil: undefined }),
    occurredAt: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()),
  }, { requiredKeys: [] });
  const pushBody = fc.oneof(
    anyBody,
    fc.array(updateLike, { maxLength: 4 }).map((events) => Buffer.from(JSON.stringify({ events }))),
    fc.jsonValue({ maxDepth: 5 }),
  );

  it('takes random Authorization headers and bodies: updates or a PushRejection, nothing else', () => {
    fc.assert(
      fc.property(fc.option(fc.oneof(fc.string({ maxLength: 300 }), fc.string().map((s) => `Bearer ${s}`)), { nil: undefined }), pushBody, (authorization, body) => {
        count('push.randomAuth');
        expectPushOutcome(() => verify(authorization === undefined ? {} : { authorization }, body), 'random auth');
      }),
      params,
    );
  });

  it('takes random JWTs (any header, any claims) signed with the right secret: only well-formed HS256 with iss, aud and exp pass', () => {
    fc.assert(
      fc.property(header, claims, (h, c) => {
        count('push.randomJwt');
        const token = hs256(h, c);
        let accepted = false;
        expectPushOutcome(() => {
          const r = verify({ authorization: `Bearer ${token}` }, Buffer.from('{"events":[]}'));
          accepted = true;
          return r;
        }, 'random jwt');
        if (accepted) {
          const hh = h as { alg?: unknown };
          const cc = c as { iss?: unknown; aud?: unknown; exp?: unknown };
          expect(hh.alg).toBe('HS256');
          expect(cc.iss).toBe('refagency');
          expect(cc.aud === HUB_ID || (Array.isArray(cc.aud) && cc.aud.includes(HUB_ID))).toBe(true);
          expect(typeof cc.exp).toBe('number');
        }
      }),
      params,
    );
  });

  it('takes random bodies behind a valid token: updates or a 400 PushRejection, nothing else', () => {
    fc.assert(
      fc.property(pushBody, (body) => {
        count('push.validToken');
        expectPushOutcome(() => verify({ authorization: `Bearer ${hs256({ alg: 'HS256', typ: 'JWT' }, goodClaims())}` }, body), 'valid token, random body');
      }),
      params,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('fuzz: parseConfig', () => {
  function expectConfigOutcome(text: string, env: Record<string, string> = {}): void {
    try {
      parseConfig(text, env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw new Error(`parseConfig threw ${(err as Error)?.name}: ${(err as Error)?.message} instead of a ConfigError`);
    }
  }
  const validDoc = YAML.parse(validConfigText);

  it('takes random text: a config or a ConfigError, nothing else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.string({ unit: fc.constantFrom(...':-{}[]&*!|>\'"%@`#,? \n\tabc${}0123'.split('')), maxLength: 200 })), (text) => {
        count('config.text');
        expectConfigOutcome(text);
      }),
      params,
    );
  });

  it('takes random documents: a config or a ConfigError, nothing else', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (doc) => {
        count('config.document');
        expectConfigOutcome(YAML.stringify(doc));
      }),
      params,
    );
  });

  it('takes mutations of a valid config and random environments: a config or a ConfigError, nothing else', () => {
    fc.assert(
      fc.property(
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.dictionary(fc.constantFrom('PORT', 'LOG_LEVEL', 'DATABASE_URL', 'REDIS_URL', 'X'), fc.string({ maxLength: 30 }), { maxKeys: 3 }),
        (mutations, env) => {
          count('config.mutated');
          let doc: unknown = validDoc;
          for (const [n, value] of mutations) doc = mutate(doc, n, value);
          expectConfigOutcome(YAML.stringify(doc), env);
        },
      ),
      params,
    );
  });

  it('takes ${NAME} references with random environments: a config or a ConfigError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (name, value) => {
        count('config.env');
        expectConfigOutcome(validConfigText.replace(SECRETS.merchantToken, `\${${name}}`), { [name]: value });
      }),
      params,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe.each<Mode>(MODES)('fuzz over HTTP (%s mode)', (mode) => {
  let stack: SecureStack;
  let available = true;
  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    stack = await startSecureStack({ mode, acmeProviders: ROWS.map((r) => r.acmeYaml).join('') });
  }, 60_000);
  afterAll(async () => {
    if (stack) await stack.stop();
  });
  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  /** Percent-encoded random bytes: invalid UTF-8, NUL, control characters, anything. */
  const encodedBytes = fc.uint8Array({ maxLength: 24 }).map((b) => [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''));
  const text = fc.oneof(
    encodedBytes,
    fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s)),
    fc.integer().map(String),
    fc.double().map(String),
    fc.constantFrom('-1', '0', '1e3', '99999999999999999999', '9007199254740993', 'NaN', 'Infinity', '1.5', '%', '%zz', '%00', '', 'null', '[]', '-271821-04-20', '+275760-09-13T00:00:00Z', '1970-01-01', '2026-01-01T00:00:00Z', '123.cse_x', '99999999999999999.cse_x'),
    fc.string({ maxLength: 300, unit: fc.constantFrom('a', '9', '.', '_') }),
  );
  const ROUTES: { path: (ref: string) => string; params: string[]; method?: string }[] = [
    { path: () => '/v1/cases', params: ['limit', 'cursor', 'status', 'partner', 'customer'] },
    { path: () => '/v1/sync-log', params: ['limit', 'cursor', 'after', 'from', 'to', 'direction', 'outcome', 'customer', 'invoice', 'case'] },
    { path: () => '/v1/deliveries', params: ['limit', 'status'] },
    { path: () => '/v1/reports/leakage', params: ['from', 'to'] },
    { path: (ref) => `/v1/customers/${ref}`, params: [] },
    { path: (ref) => `/v1/invoices/${ref}`, params: [] },
    { path: (ref) => `/v1/cases/${ref}`, params: [] },
    { path: (ref) => `/v1/deliveries/${ref}/retry`, params: [], method: 'POST' },
  ];

  maybe('the merchant API answers random query parameters and ids with 2xx or a clear 4xx, never a 5xx', async () => {
    const token = stack.token('acme');
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: ROUTES.length - 1 }),
        text.filter((t) => t !== '' && !t.includes('/') && !t.includes('?') && !t.includes('#')),
        fc.array(fc.tuple(fc.nat(), text), { maxLength: 4 }),
        async (i, ref, query) => {
          count(`${mode}.api`);
          const route = ROUTES[i];
          const qs = route.params.length ? query.map(([n, v]) => `${route.params[n % route.params.length]}=${v}`).join('&') : '';
          const path = `${route.path(ref.replace(/[/?#]/g, ''))}${qs ? `?${qs}` : ''}`;
          const r = await send(`${stack.hubUrl}${path}`, { method: route.method ?? 'GET', headers: { authorization: `Bearer ${token}` } });
          if (r.status >= 200 && r.status < 300) return;
          expectClearRefusal(r, `${route.method ?? 'GET'} ${path}`);
        },
      ),
      { ...params, interruptAfterTimeLimit: 40_000 },
    );
  });

  maybe('signed PSP events with random extra fields are stored or refused with a 4xx, never a 5xx', async () => {
    const extras = fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('\u0000', 'a\u0000b', '\uD800', '\\u0000')), { minKeys: 1, maxKeys: 4 });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: ROWS.length - 1 }), extras, async (i, extra) => {
        count(`${mode}.signedEvents`);
        const row = ROWS[i];
        const valid = JSON.parse(row.validBody(`fz${Date.now().toString(36)}${n++}`));
        // Extra fields at the top and, where there is one, inside the PSP's object (loose parts).
        const doc = { ...extra, ...valid };
        if (doc.data?.object) doc.data.object.metadata = extra;
        if (doc.notificationItems?.[0]?.NotificationRequestItem) doc.notificationItems[0].NotificationRequestItem.additionalData = { ...extra };
        if (doc.events?.[0]) doc.events[0].metadata = extra;
        const s = row.sign(JSON.stringify(doc));
        const r = await send(`${stack.hubUrl}/v1/webhooks/${row.id}/acme`, { body: s.body, headers: { 'content-type': row.contentType, ...s.headers } });
        if (r.status < 300) return;
        expectClearRefusal(r, `${row.id} with ${JSON.stringify(extra).slice(0, 200)}`);
      }),
      { ...params, numRuns: 120, interruptAfterTimeLimit: 40_000 },
    );
  });
});
