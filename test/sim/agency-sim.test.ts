/**
 * The agency simulator as the hub will meet it: real HTTP on loopback, its JWT checks,
 * idempotency, validation, lifecycle, pull feed, pushes (with faults) and control endpoints.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import axios, { type AxiosResponse } from 'axios';
import express from 'express';
import jwt from 'jsonwebtoken';
import type { AgencyUpdate } from '../../src/domain/types';
import { FLAGS, envName, parseCli } from '../../sim/agency-sim/options';
import { createAgencySimulator, type AgencySimulator, type AgencySimulatorOptions } from '../../sim/agency-sim/simulator';

const IN_SECRET = 'hub-to-agency-shared-secret-0123456789';
const OUT_SECRET = 'agency-to-hub-shared-secret-9876543210';
const PARTNER = 'refagency';
const HUB = 'collection-hub';

// ---- helpers ----------------------------------------------------------------------------------

const running: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

async function startSim(opts: AgencySimulatorOptions = {}): Promise<{ sim: AgencySimulator; url: string }> {
  const sim = createAgencySimulator({ inSecret: IN_SECRET, stepMs: 0, ...opts });
  const { url } = await sim.start(0, '127.0.0.1');
  running.push({ close: () => sim.stop() });
  return { sim, url };
}

/** A tiny express app on a free port, stopped after the test. */
async function listen(app: express.Express): Promise<string> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  running.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function hubToken(claims: Record<string, unknown> = {}, opts: jwt.SignOptions = {}, key: jwt.Secret = IN_SECRET): string {
  const options: jwt.SignOptions = { algorithm: 'HS256', issuer: HUB, audience: PARTNER, expiresIn: 120, jwtid: crypto.randomUUID(), ...opts };
  // `expiresIn: undefined` means "no exp at all"; jsonwebtoken wants the key gone, not undefined.
  if (options.expiresIn === undefined) delete options.expiresIn;
  return jwt.sign({ ...claims }, key, options);
}

const b64url = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');

let keyCounter = 0;
const newKey = (): string => `key-${++keyCounter}-${crypto.randomUUID()}`;

function client(url: string, token: string | null = hubToken()) {
  const headers = (extra: Record<string, string> = {}): Record<string, string> => ({
    ...(token ? { Authorization: `Bearer ${token}` } : {}),
    ...extra,
  });
  const opts = { validateStatus: () => true };
  return {
    get: (p: string): Promise<AxiosResponse> => axios.get(url + p, { ...opts, headers: headers() }),
    post: (p: string, body: unknown, key: string | null = newKey()): Promise<AxiosResponse> =>
      axios.post(url + p, body, { ...opts, headers: headers(key ? { 'Idempotency-Key': key } : {}) }),
  };
}

function claim(reference: string, value: number, currency = 'EUR') {
  return {
    reference,
    number: `INV-${reference}`,
    principal: { value, currency },
    dueAt: '2024-04-01',
    failure: { provider: 'stripe', code: 'insufficient_funds', reason: 'insufficient_funds' },
  };
}

function caseBody(reference: string, claims = [claim('in_1', 1000), claim('in_2', 500)]) {
  return {
    reference,
    creditor: { id: 'acme', name: 'Acme Subscriptions BV' },
    debtor: { reference: 'cus_1', type: 'consumer', name: 'Jo Jansen', email: 'jo@example.com', country: 'NL' },
    claims,
  };
}

/** Poll instead of sleeping a fixed time: fast when things work, bounded when they do not. */
type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 3000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function allUpdates(url: string): Promise<AgencyUpdate[]> {
  const res = await client(url).get('/v1/updates?after=0&limit=1000');
  expect(res.status).toBe(200);
  return res.data.updates as AgencyUpdate[];
}

const brief = (u: AgencyUpdate): string => [u.claimReference ?? 'case', u.status, u.reason, u.amountCollected?.value].filter((x) => x !== undefined).join(' ');

// ---- auth --------------------------------------------------------------------------------------

describe('inbound auth (hub → agency JWT)', () => {
  it('refuses a call without a bearer token', async () => {
    const { url } = await startSim();
    const res = await client(url, null).get('/v1/updates');
    expect(res.status).toBe(401);
    expect(res.data.error.code).toBe('missing_token');
    expect(res.headers['www-authenticate']).toContain('Bearer');
  });

  const now = Math.floor(Date.now() / 1000);
  it.each([
    ['a token for another agency', () => hubToken({}, { audience: 'otheragency' }), 'invalid_audience', /aud must be "refagency"/],
    ['a token from another issuer', () => hubToken({}, { issuer: 'someone-else' }), 'invalid_issuer', /iss must be "collection-hub"/],
    ['an expired token', () => hubToken({ iat: now - 600, exp: now - 300 }, { expiresIn: undefined }), 'token_expired', /expired/],
    ['a token signed with another secret', () => hubToken({}, {}, 'not-the-shared-secret-at-all-0123456789'), 'invalid_signature', /signature/],
    ['a token valid for more than 5 minutes', () => hubToken({}, { expiresIn: 600 }), 'token_lifetime_too_long', /at most 300/],
    ['a token without exp', () => hubToken({}, { expiresIn: undefined }), 'missing_exp', /exp is required/],
    [
      'an unsigned alg:none token',
      () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: HUB, aud: PARTNER, iat: now, exp: now + 60 })}.`,
      'alg_not_allowed',
      /"none" is not accepted/,
    ],
  ])('refuses %s with 401 naming the problem', async (_name, token, code, message) => {
    const { url } = await startSim();
    const res = await client(url, token()).get('/v1/updates');
    expect(res.status).toBe(401);
    expect(res.data.error.code).toBe(code);
    expect(res.data.error.message).toMatch(message);
  });

  it('accepts a good HS256 token', async () => {
    const { url } = await startSim();
    const res = await client(url).get('/v1/updates');
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ updates: [], next: '0' });
  });

  describe('with the hub JWKS (RS256/ES256)', () => {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const impostor = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

    async function jwksSim(): Promise<{ url: string; jwksHits: () => number }> {
      let hits = 0;
      const jwksApp = express();
      jwksApp.get('/.well-known/jwks.json', (_req, res) => {
        hits++;
        res.json({
          keys: [
            { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
            { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' },
          ],
        });
      });
      const hubUrl = await listen(jwksApp);
      const { url } = await startSim({ inSecret: undefined, hubJwksUrl: `${hubUrl}/.well-known/jwks.json` });
      return { url, jwksHits: () => hits };
    }

    const asymmetric = (alg: 'RS256' | 'ES256', key: crypto.KeyObject, kid: string): string =>
      jwt.sign({}, key, { algorithm: alg, keyid: kid, issuer: HUB, audience: PARTNER, expiresIn: 120, jwtid: crypto.randomUUID() });

    it('accepts RS256 and ES256 tokens with keys picked by kid, fetching the JWKS once', async () => {
      const { url, jwksHits } = await jwksSim();
      expect((await client(url, asymmetric('RS256', rsa.privateKey, 'rsa-1')).get('/v1/updates')).status).toBe(200);
      expect((await client(url, asymmetric('ES256', ec.privateKey, 'ec-1')).get('/v1/updates')).status).toBe(200);
      expect(jwksHits()).toBe(1);
    });

    it('refuses an HS256 token when only the JWKS is configured', async () => {
      const { url } = await jwksSim();
      const res = await client(url, hubToken()).get('/v1/updates');
      expect(res.status).toBe(401);
      expect(res.data.error.code).toBe('alg_not_allowed');
      expect(res.data.error.message).toContain('RS256, ES256');
    });

    it('refuses an unknown kid and a token signed by another key under a known kid', async () => {
      const { url } = await jwksSim();
      const unknown = await client(url, asymmetric('RS256', rsa.privateKey, 'rsa-9')).get('/v1/updates');
      expect(unknown.status).toBe(401);
      expect(unknown.data.error.code).toBe('unknown_kid');
      const forged = await client(url, asymmetric('RS256', impostor.privateKey, 'rsa-1')).get('/v1/updates');
      expect(forged.status).toBe(401);
      expect(forged.data.error.code).toBe('invalid_signature');
    });
  });
});

// ---- idempotency and validation --------------------------------------------------------------

describe('idempotency', () => {
  it('refuses a mutating call without Idempotency-Key and creates nothing', async () => {
    const { sim, url } = await startSim();
    const res = await client(url).post('/v1/cases', caseBody('c-1'), null);
    expect(res.status).toBe(400);
    expect(res.data.error.code).toBe('missing_idempotency_key');
    expect(sim.cases()).toHaveLength(0);
  });

  it('answers the same key and body twice with the same answer and creates one case', async () => {
    const { sim, url } = await startSim();
    const first = await client(url).post('/v1/cases', caseBody('c-1'), 'same-key');
    // Key order differs; the request is the same.
    const { claims, ...rest } = caseBody('c-1');
    const second = await client(url).post('/v1/cases', { claims, ...rest }, 'same-key');
    expect(first.status).toBe(201);
    expect(first.data).toEqual({ id: 'case_000001', status: 'submitted', reference: 'c-1' });
    expect(second.status).toBe(first.status);
    expect(second.data).toEqual(first.data);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(sim.cases()).toHaveLength(1);
    expect(sim.updates().filter((u) => u.status === 'submitted')).toHaveLength(1);
  });

  it('refuses the same key with a different body with 422', async () => {
    const { sim, url } = await startSim();
    expect((await client(url).post('/v1/cases', caseBody('c-1'), 'k')).status).toBe(201);
    const res = await client(url).post('/v1/cases', caseBody('c-2'), 'k');
    expect(res.status).toBe(422);
    expect(res.data.error.code).toBe('idempotency_key_reused');
    expect(res.data.error.message).toContain('different request');
    expect(sim.cases()).toHaveLength(1);
  });

  it('answers a second case with the same reference 409 with the existing id', async () => {
    const { url } = await startSim();
    const first = await client(url).post('/v1/cases', caseBody('c-1'));
    const res = await client(url).post('/v1/cases', caseBody('c-1'));
    expect(res.status).toBe(409);
    expect(res.data.error.code).toBe('duplicate_reference');
    expect(res.data.id).toBe(first.data.id);
  });
});

describe('body validation', () => {
  it.each([
    ['a fractional amount', (b: ReturnType<typeof caseBody>) => (b.claims[0].principal.value = 12.5), 'claims[0].principal.value'],
    ['a lower-case currency', (b: ReturnType<typeof caseBody>) => (b.claims[1].principal.currency = 'eur'), 'claims[1].principal.currency'],
    ['a missing debtor name', (b: ReturnType<typeof caseBody>) => delete (b.debtor as { name?: string }).name, 'debtor.name'],
    ['an unknown failure reason', (b: ReturnType<typeof caseBody>) => (b.claims[0].failure.reason = 'bad_luck'), 'claims[0].failure.reason'],
    ['mixed currencies', (b: ReturnType<typeof caseBody>) => (b.claims[1].principal.currency = 'USD'), 'claims[1].principal.currency'],
  ])('refuses %s with 400 naming the field', async (_name, spoil, field) => {
    const { sim, url } = await startSim();
    const body = caseBody('c-1');
    spoil(body);
    const res = await client(url).post('/v1/cases', body);
    expect(res.status).toBe(400);
    expect(res.data.error.code).toBe('invalid_body');
    expect(res.data.error.path).toBe(field);
    expect(res.data.error.message).toContain(field);
    expect(sim.cases()).toHaveLength(0);
  });

  it('refuses a payment without paidAt, naming it', async () => {
    const { url } = await startSim();
    const { data } = await client(url).post('/v1/cases', caseBody('c-1'));
    const res = await client(url).post(`/v1/cases/${data.id}/claims/in_1/payments`, { amount: { value: 100, currency: 'EUR' }, channel: 'psp' });
    expect(res.status).toBe(400);
    expect(res.data.error.path).toBe('paidAt');
  });
});

// ---- lifecycle ---------------------------------------------------------------------------------

describe('lifecycle', () => {
  it('plays a paid case from submitted to paid on its own timer (scenario from the reference marker)', async () => {
    const { url } = await startSim({ stepMs: 20 });
    const created = await client(url).post('/v1/cases', caseBody('c-1#scenario=paid'));
    expect(created.status).toBe(201);
    const updates = await waitFor(async () => {
      const all = await allUpdates(url);
      return all.some((u) => u.claimReference === null && u.status === 'paid') && all;
    }, 'the final paid update');
    expect(updates.map(brief)).toEqual(['case submitted', 'case in_collection', 'in_1 paid paid_in_full 1000', 'in_2 paid paid_in_full 500', 'case paid paid_in_full 1500']);
    expect(updates.map((u) => u.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(updates.map((u) => u.id)).size).toBe(5);
    for (const u of updates) {
      expect(u).toMatchObject({ caseId: created.data.id, caseReference: 'c-1#scenario=paid' });
      expect(new Date(u.occurredAt).toISOString()).toBe(u.occurredAt);
    }
    const view = await client(url).get(`/v1/cases/${created.data.id}`);
    expect(view.data.status).toBe('paid');
    expect(view.data.claims).toEqual([
      expect.objectContaining({ reference: 'in_1', status: 'paid', reason: 'paid_in_full', amountCollected: { value: 1000, currency: 'EUR' } }),
      expect.objectContaining({ reference: 'in_2', status: 'paid', reason: 'paid_in_full', amountCollected: { value: 500, currency: 'EUR' } }),
    ]);
  });

  it('plays a disputed case chosen through the control endpoint', async () => {
    const { url } = await startSim({ stepMs: 20 });
    expect((await axios.post(`${url}/_sim/scenario`, { scenario: 'disputed' })).status).toBe(200);
    await client(url).post('/v1/cases', caseBody('c-1'));
    const updates = await waitFor(async () => {
      const all = await allUpdates(url);
      return all.some((u) => u.claimReference === null && u.status === 'closed') && all;
    }, 'the case to close');
    expect(updates.map(brief)).toEqual([
      'case submitted',
      'case in_collection',
      'case disputed',
      'in_1 closed disputed_upheld 0',
      'in_2 closed disputed_upheld 0',
      'case closed disputed_upheld 0',
    ]);
  });

  it('pays an arrangement in three installments, oldest claim first', async () => {
    const { url } = await startSim();
    const { data } = await client(url).post('/v1/cases', caseBody('c-1#scenario=arrangement'));
    await waitFor(async () => (await axios.post(`${url}/_sim/step`, {})).data.updates === 0, 'the case to end');
    const updates = await allUpdates(url);
    expect(updates.map(brief)).toEqual([
      'case submitted',
      'case in_collection',
      'case arrangement',
      'in_1 partially_paid 500',
      'in_1 paid paid_via_arrangement 1000',
      'in_2 paid paid_via_arrangement 500',
      'case paid paid_via_arrangement 1500',
    ]);
    expect(updates[2].arrangement).toEqual({ installments: 3, amount: { value: 500, currency: 'EUR' }, firstDueAt: expect.any(String) });
    expect((await client(url).get(`/v1/cases/${data.id}`)).data.status).toBe('paid');
  });

  it.each([
    ['partial', /^(in_1 uncollectible written_off 500)?$/],
    ['uncollectible', /^in_1 uncollectible (debtor_untraceable|debtor_insolvent|written_off) 0$/],
  ])('ends a %s case as the scenario says', async (scenario, ending) => {
    const { url } = await startSim();
    await client(url).post('/v1/cases', caseBody(`c-1#scenario=${scenario}`, [claim('in_1', 1000)]));
    await waitFor(async () => (await axios.post(`${url}/_sim/step`, {})).data.updates === 0, 'the case to settle');
    const lines = (await allUpdates(url)).map(brief).slice(2);
    if (scenario === 'partial') {
      expect(lines[0]).toBe('in_1 partially_paid 500');
      expect(lines.slice(1, 2).join('')).toMatch(ending);
    } else {
      expect(lines[0]).toMatch(ending);
      expect(lines[1]).toMatch(/^case uncollectible /);
    }
  });

  it('draws the same scenarios for the same seed', async () => {
    const scenarios = async (seed: number): Promise<string[]> => {
      const { sim, url } = await startSim({ seed });
      for (let i = 0; i < 12; i++) await client(url).post('/v1/cases', caseBody(`c-${i}`));
      return sim.cases().map((c) => c.scenario);
    };
    const a = await scenarios(7);
    expect(await scenarios(7)).toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(1);
    expect(await scenarios(8)).not.toEqual(a);
  });

  it('stacks a claim onto an open case and takes it through the scenario', async () => {
    const { url } = await startSim();
    const { data } = await client(url).post('/v1/cases', caseBody('c-1#scenario=paid', [claim('in_1', 1000)]));
    await axios.post(`${url}/_sim/step`, {}); // in_collection
    const added = await client(url).post(`/v1/cases/${data.id}/claims`, claim('in_2', 300));
    expect(added.status).toBe(201);
    expect((await client(url).post(`/v1/cases/${data.id}/claims`, claim('in_2', 300))).status).toBe(409);
    expect((await client(url).post('/v1/cases/case_999999/claims', claim('in_3', 300))).status).toBe(404);
    await waitFor(async () => (await axios.post(`${url}/_sim/step`, {})).data.updates === 0, 'the case to end');
    expect((await allUpdates(url)).map(brief)).toEqual([
      'case submitted',
      'case in_collection',
      'in_2 submitted',
      'in_2 in_collection 0',
      'in_1 paid paid_in_full 1000',
      'in_2 paid paid_in_full 300',
      'case paid paid_in_full 1300',
    ]);
    const late = await client(url).post(`/v1/cases/${data.id}/claims`, claim('in_3', 300));
    expect(late.status).toBe(409);
    expect(late.data.error.code).toBe('case_closed');
  });

  it('marks a claim paid to the merchant once direct payments cover it', async () => {
    const { url } = await startSim();
    const { data } = await client(url).post('/v1/cases', caseBody('c-1#scenario=manual'));
    const pay = (value: number) =>
      client(url).post(`/v1/cases/${data.id}/claims/in_2/payments`, { amount: { value, currency: 'EUR' }, paidAt: '2024-05-01T10:00:00Z', channel: 'stripe' });
    const first = await pay(200);
    expect(first.status).toBe(202);
    expect(first.data.amountOpen).toEqual({ value: 300, currency: 'EUR' });
    expect(sim_updates_of(await allUpdates(url), 'in_2')).toEqual([]);
    const second = await pay(300);
    expect(second.data.status).toBe('paid');
    expect(sim_updates_of(await allUpdates(url), 'in_2')).toEqual(['in_2 paid paid_to_merchant']);
    expect((await pay(1)).status).toBe(409);
  });

  it('withdraws one claim, then the rest of the case', async () => {
    const { url } = await startSim();
    const { data } = await client(url).post('/v1/cases', caseBody('c-1#scenario=manual'));
    const one = await client(url).post(`/v1/cases/${data.id}/withdraw`, { reason: 'credit_note', claimReference: 'in_1' });
    expect(one.status).toBe(202);
    const rest = await client(url).post(`/v1/cases/${data.id}/withdraw`, { reason: 'customer moved to another plan' });
    expect(rest.status).toBe(202);
    const updates = await allUpdates(url);
    expect(updates.slice(1).map(brief)).toEqual(['in_1 withdrawn credit_note', 'in_2 withdrawn withdrawn_by_merchant', 'case withdrawn 0']);
    expect(updates[2].note).toContain('customer moved to another plan');
    const again = await client(url).post(`/v1/cases/${data.id}/withdraw`, { reason: 'x' });
    expect(again.status).toBe(409);
    expect(again.data.error.code).toBe('case_closed');
  });

  it('holds the lifecycle while paused and picks it up on resume', async () => {
    const { url } = await startSim({ stepMs: 20 });
    await axios.post(`${url}/_sim/pause`);
    await client(url).post('/v1/cases', caseBody('c-1#scenario=uncollectible'));
    await new Promise((r) => setTimeout(r, 120));
    expect((await allUpdates(url)).map(brief)).toEqual(['case submitted']);
    await axios.post(`${url}/_sim/resume`);
    await waitFor(async () => (await allUpdates(url)).some((u) => u.claimReference === null && u.status === 'uncollectible'), 'the case to end');
  });
});

function sim_updates_of(updates: AgencyUpdate[], claimReference: string): string[] {
  return updates.filter((u) => u.claimReference === claimReference).map((u) => [u.claimReference, u.status, u.reason].join(' '));
}

// ---- pull feed ---------------------------------------------------------------------------------

describe('update feed', () => {
  it('pages oldest first with after/limit and returns the same cursor when nothing is new', async () => {
    const { url } = await startSim();
    for (let i = 1; i <= 3; i++) await client(url).post('/v1/cases', caseBody(`c-${i}#scenario=manual`));
    await axios.post(`${url}/_sim/step`, {}); // 3 × in_collection → 6 updates
    const p1 = await client(url).get('/v1/updates?limit=4');
    expect(p1.data.updates.map((u: AgencyUpdate) => u.seq)).toEqual([1, 2, 3, 4]);
    expect(p1.data.next).toBe('4');
    const p2 = await client(url).get(`/v1/updates?after=${p1.data.next}&limit=4`);
    expect(p2.data.updates.map((u: AgencyUpdate) => u.seq)).toEqual([5, 6]);
    expect(p2.data.next).toBe('6');
    const p3 = await client(url).get(`/v1/updates?after=${p2.data.next}&limit=4`);
    expect(p3.data).toEqual({ updates: [], next: '6' });
    expect((await client(url).get('/v1/updates?after=abc')).status).toBe(400);
    expect((await client(url).get('/v1/updates?limit=0')).status).toBe(400);
  });
});

// ---- push --------------------------------------------------------------------------------------

/** The hub's push endpoint, reduced to what a test needs: verify the JWT, keep the events. */
async function hubReceiver(opts: { failFirst?: number } = {}) {
  const received: AgencyUpdate[] = [];
  const pushes: AgencyUpdate[][] = [];
  const refused: string[] = [];
  let calls = 0;
  const app = express();
  app.post('/v1/partners/:partnerId/events', express.json(), (req, res) => {
    calls++;
    try {
      const token = String(req.headers.authorization).replace(/^Bearer /, '');
      const claims = jwt.verify(token, OUT_SECRET, { algorithms: ['HS256'], issuer: PARTNER, audience: HUB }) as jwt.JwtPayload;
      if (typeof claims.exp !== 'number' || typeof claims.jti !== 'string') throw new Error('exp and jti required');
      if (req.params.partnerId !== PARTNER) throw new Error(`wrong partner ${req.params.partnerId}`);
    } catch (err) {
      refused.push((err as Error).message);
      res.status(401).json({ error: (err as Error).message });
      return;
    }
    if (calls <= (opts.failFirst ?? 0)) {
      res.status(503).json({ error: 'busy' });
      return;
    }
    pushes.push(req.body.events);
    received.push(...req.body.events);
    res.json({ ok: true });
  });
  const url = await listen(app);
  return { url, received, pushes, refused };
}

describe('push to the hub', () => {
  it('pushes every update in order with a valid HS256 token', async () => {
    const hub = await hubReceiver();
    const { sim, url } = await startSim({ hubUrl: hub.url, outSecret: OUT_SECRET, stepMs: 20 });
    await client(url).post('/v1/cases', caseBody('c-1#scenario=paid'));
    await waitFor(() => hub.received.some((u) => u.claimReference === null && u.status === 'paid'), 'the final update to arrive');
    expect(hub.refused).toEqual([]);
    expect(hub.received).toEqual(sim.updates());
  });

  it('delivers each push twice at duplicate-rate 1', async () => {
    const hub = await hubReceiver();
    const { sim, url } = await startSim({ hubUrl: hub.url, outSecret: OUT_SECRET, duplicateRate: 1 });
    await client(url).post('/v1/cases', caseBody('c-1#scenario=paid'));
    while ((await axios.post(`${url}/_sim/step`, {})).data.updates > 0);
    await sim.pushesSettled();
    const emitted = sim.updates();
    expect(emitted.length).toBe(5);
    const counts = new Map<string, number>();
    for (const u of hub.received) counts.set(u.id, (counts.get(u.id) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(emitted.map((u) => u.id).sort());
    expect([...counts.values()].every((n) => n === 2)).toBe(true);
    expect(sim.pushes().filter((p) => p.duplicate)).toHaveLength(hub.pushes.length / 2);
  });

  it('retries a push the hub answers 503, with backoff, until it is taken', async () => {
    const hub = await hubReceiver({ failFirst: 2 });
    const { sim, url } = await startSim({ hubUrl: hub.url, outSecret: OUT_SECRET, pushBackoffMs: 10 });
    await client(url).post('/v1/cases', caseBody('c-1'));
    await sim.pushesSettled();
    expect(hub.received.map((u) => u.status)).toEqual(['submitted']);
    expect(sim.pushes().map((p) => [p.attempt, p.status])).toEqual([
      [1, 503],
      [2, 503],
      [3, 200],
    ]);
  });

  it('shuffles a burst of updates across small batches when out-of-order is on', async () => {
    const hub = await hubReceiver();
    const { sim, url } = await startSim({ hubUrl: hub.url, outSecret: OUT_SECRET, outOfOrder: true, pushBatch: 3, seed: 3 });
    const { data } = await client(url).post('/v1/cases', caseBody('c-1#scenario=manual'));
    for (let i = 0; i < 8; i++) sim.emit(data.id, { status: 'in_collection', note: `call ${i}` });
    await sim.pushesSettled();
    const seqs = hub.received.map((u) => u.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(sim.updates().map((u) => u.seq));
    expect(seqs).not.toEqual([...seqs].sort((a, b) => a - b));
    expect(Math.max(...hub.pushes.map((p) => p.length))).toBeLessThanOrEqual(3);
  });
});

// ---- faults ------------------------------------------------------------------------------------

describe('fault injection', () => {
  it('answers mutating calls 503 at error-rate 1 without doing anything, reads still work', async () => {
    const { sim, url } = await startSim({ errorRate: 1 });
    const res = await client(url).post('/v1/cases', caseBody('c-1'), 'k-1');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect((await client(url).get('/v1/updates')).status).toBe(200);
    expect(sim.cases()).toHaveLength(0);
    // Switched off at run time; the same key now goes through, as the 503 stored nothing.
    expect((await axios.post(`${url}/_sim/faults`, { errorRate: 0 })).data.errorRate).toBe(0);
    expect((await client(url).post('/v1/cases', caseBody('c-1'), 'k-1')).status).toBe(201);
  });

  it('processes a call whose answer is lost, and replays it for the retry with the same key', async () => {
    const { sim, url } = await startSim({ timeoutRate: 1, timeoutMs: 5000 });
    const lost = axios.post(`${url}/v1/cases`, caseBody('c-1'), {
      headers: { Authorization: `Bearer ${hubToken()}`, 'Idempotency-Key': 'k-1' },
      timeout: 150,
    });
    await expect(lost).rejects.toThrow(/timeout/);
    expect(sim.cases()).toHaveLength(1);
    await axios.post(`${url}/_sim/faults`, { timeoutRate: 0 });
    const retry = await client(url).post('/v1/cases', caseBody('c-1'), 'k-1');
    expect(retry.status).toBe(201);
    expect(retry.data.id).toBe('case_000001');
    expect(sim.requests().map((r) => [r.fault, r.status, r.replayed])).toEqual([
      ['timeout', null, false],
      [null, 201, true],
    ]);
  });

  it('adds latency to every answer', async () => {
    const { url } = await startSim({ latencyMs: 150 });
    const t0 = Date.now();
    expect((await client(url).get('/v1/updates')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });
});

// ---- control endpoints -------------------------------------------------------------------------

describe('control endpoints', () => {
  it('emits a forced paid update, followed by the case outcome once every claim has ended', async () => {
    const { url } = await startSim();
    const { data } = await client(url).post('/v1/cases', caseBody('c-1#scenario=manual', [claim('in_1', 1000)]));
    const forced = await axios.post(`${url}/_sim/cases/${data.id}/events`, { status: 'paid', reason: 'paid_in_full', claimReference: 'in_1' });
    expect(forced.status).toBe(201);
    expect(forced.data.update).toMatchObject({
      caseId: data.id,
      claimReference: 'in_1',
      status: 'paid',
      reason: 'paid_in_full',
      amountCollected: { value: 1000, currency: 'EUR' },
    });
    expect((await allUpdates(url)).map(brief)).toEqual(['case submitted', 'in_1 paid paid_in_full 1000', 'case paid paid_in_full 1000']);
    const bad = await axios.post(`${url}/_sim/cases/${data.id}/events`, { status: 'happy' }, { validateStatus: () => true });
    expect(bad.status).toBe(400);
    expect(bad.data.error.path).toBe('status');
  });

  it('logs every /v1 request with its idempotency key and answer', async () => {
    const { url } = await startSim();
    await client(url).post('/v1/cases', caseBody('c-1'), 'log-key');
    await client(url, null).get('/v1/updates');
    const { data } = await axios.get(`${url}/_sim/requests`);
    expect(data.requests).toEqual([
      expect.objectContaining({ method: 'POST', path: '/v1/cases', idempotencyKey: 'log-key', status: 201 }),
      expect.objectContaining({ method: 'GET', path: '/v1/updates', idempotencyKey: null, status: 401, authError: 'missing_token' }),
    ]);
    const cases = await axios.get(`${url}/_sim/cases`);
    expect(cases.data.cases).toEqual([expect.objectContaining({ id: 'case_000001', reference: 'c-1', scenario: expect.any(String) })]);
  });
});

// ---- settings ----------------------------------------------------------------------------------

describe('settings', () => {
  it('reads flags over AGENCY_SIM_* variables over defaults', () => {
    const cli = parseCli(['--in-secret', IN_SECRET, '--step-ms', '50', '--out-of-order'], {
      AGENCY_SIM_STEP_MS: '999',
      AGENCY_SIM_SEED: '42',
      AGENCY_SIM_ERROR_RATE: '0.25',
    });
    expect(cli.help).toBe(false);
    if (cli.help) return;
    expect(cli.settings).toMatchObject({ stepMs: 50, seed: 42, errorRate: 0.25, outOfOrder: true, port: 4010, partnerId: 'refagency' });
  });

  it('stops on a bad value, naming the flag', () => {
    expect(() => parseCli(['--in-secret', IN_SECRET, '--error-rate', '2'], {})).toThrow(/--error-rate: must be between 0 and 1/);
    expect(() => parseCli(['--in-secret', IN_SECRET, '--scenario-mix', 'paid:1,lucky:2'], {})).toThrow(/unknown scenario "lucky"/);
    expect(() => parseCli([], {})).toThrow(/--in-secret/);
    expect(() => parseCli(['--in-secret', IN_SECRET, '--hub-url', 'http://127.0.0.1:3000'], {})).toThrow(/--out-secret/);
  });

  it('documents every flag and its variable in the README', () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../sim/agency-sim/README.md'), 'utf8');
    for (const flag of Object.keys(FLAGS)) expect(readme).toContain(`\`--${flag}\``);
    expect(readme).toContain('AGENCY_SIM_');
    expect(envName('hub-jwks-url')).toBe('AGENCY_SIM_HUB_JWKS_URL');
  });
});
