/**
 * Guarantee 7 — auth attacks. Merchant tokens and agency push tokens with `alg: none`, HS/RS key
 * confusion (an RS256 token, even one signed with the hub's own key; an HS256 token keyed with
 * the hub's public JWKS key), wrong `aud` or `iss`, expired, not yet valid, without `exp`, for an
 * unknown merchant — all refused 401. And one merchant's valid token on another's customers,
 * invoices, cases, sync-log entries, deliveries and retries — 404 or an empty list, never the data.
 * Both run modes; the hub signs its agency calls RS256 so that it has a public key to confuse.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createPushVerifier } from '../../../connectors/agency/reference/verify';
import { PushRejection } from '../../../connectors/agency/types';
import { loadAgencyMapping } from '../../../src/mappings/load';
import { verifyMerchantToken } from '../../../src/http/merchant-auth';
import { HttpError } from '../../../src/http/errors';
import { signStripe, stripeEvents } from '../../../sim/psp/stripe-events';
import { SECRETS } from '../../support/stack';
import { waitFor } from '../../support/services';
import {
  expectClearRefusal, handMadeHs256, HUB_ID, modeAvailable, MODES, nowS, send, startFailingAgency, startSecureStack, unsignedToken,
  type FailingAgency, type Mode, type SecureStack,
} from './support';

const otherRsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherEc = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const figures = { merchantAttacks: 0, partnerAttacks: 0, crossTenant: 0 };

afterAll(() => {
  console.log(`[security] auth attacks: ${figures.merchantAttacks} forged merchant tokens, ${figures.partnerAttacks} forged partner tokens, ${figures.crossTenant} cross-tenant requests — all refused`);
});

describe('verifyMerchantToken (unit)', () => {
  const opts = { hubId: HUB_ID, secret: SECRETS.merchantToken, merchantIds: new Set(['acme', 'globex']) };
  const good = { sub: 'acme', aud: HUB_ID, iss: HUB_ID, iat: nowS(), exp: nowS() + 600 };
  const refusal = (token: string) => {
    try {
      verifyMerchantToken(`Bearer ${token}`, opts);
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      return (err as HttpError).status;
    }
    return 200;
  };

  it('accepts the hub-issued form and nothing looser', () => {
    expect(refusal(handMadeHs256({ alg: 'HS256', typ: 'JWT' }, good, SECRETS.merchantToken))).toBe(200);
    const cases: [string, string][] = [
      ['iss missing', handMadeHs256({ alg: 'HS256' }, { ...good, iss: undefined }, SECRETS.merchantToken)],
      ['iss of a partner', handMadeHs256({ alg: 'HS256' }, { ...good, iss: 'refagency' }, SECRETS.merchantToken)],
      ['nbf a minute ahead', handMadeHs256({ alg: 'HS256' }, { ...good, nbf: nowS() + 60 }, SECRETS.merchantToken)],
      ['exp a second ago', handMadeHs256({ alg: 'HS256' }, { ...good, exp: nowS() - 1 }, SECRETS.merchantToken)],
      ['exp as a string', handMadeHs256({ alg: 'HS256' }, { ...good, exp: String(nowS() + 600) }, SECRETS.merchantToken)],
      ['sub as a list', handMadeHs256({ alg: 'HS256' }, { ...good, sub: ['acme'] }, SECRETS.merchantToken)],
      ['alg HS512 with the right secret', (() => { const i = `${Buffer.from('{"alg":"HS512"}').toString('base64url')}.${Buffer.from(JSON.stringify(good)).toString('base64url')}`; return `${i}.${crypto.createHmac('sha512', SECRETS.merchantToken).update(i).digest('base64url')}`; })()],
    ];
    for (const [name, token] of cases) expect({ name, status: refusal(token) }).toEqual({ name, status: 401 });
  });
});

describe('the push verifier of a partner with an RSA key (unit): key confusion', () => {
  const agency = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = agency.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const verify = createPushVerifier({ partnerId: 'refagency', hubId: HUB_ID, inbound: { alg: 'RS256', publicKey: publicPem }, mapping: loadAgencyMapping('reference') });
  const claims = { iss: 'refagency', aud: HUB_ID, iat: nowS(), exp: nowS() + 60, jti: 'push-token-key-confusion' };
  const status = (token: string) => {
    try {
      verify({ authorization: `Bearer ${token}` }, Buffer.from('{"events":[]}'));
      return 200;
    } catch (err) {
      expect(err).toBeInstanceOf(PushRejection);
      return (err as PushRejection).status;
    }
  };

  it('accepts RS256 signed with the agency key and refuses HS256 keyed with its public key, other keys and alg none', () => {
    expect(status(jwt.sign(claims, agency.privateKey, { algorithm: 'RS256' }))).toBe(200);
    const cases: [string, string][] = [
      ['HS256 keyed with the public PEM', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, claims, publicPem)],
      ['HS256 keyed with the public DER', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, claims, agency.publicKey.export({ type: 'spki', format: 'der' }))],
      ['RS256 signed with another key', jwt.sign(claims, otherRsa.privateKey, { algorithm: 'RS256' })],
      ['ES256 signed with another key', jwt.sign(claims, otherEc.privateKey, { algorithm: 'ES256' })],
      ['PS256 signed with the agency key', jwt.sign(claims, agency.privateKey, { algorithm: 'PS256' })],
      ['alg none', unsignedToken(claims)],
      ['alg none with a decoy signature', unsignedToken(claims, 'none', 'c2lnbmF0dXJl')],
    ];
    for (const [name, token] of cases) {
      figures.partnerAttacks++;
      expect({ name, status: status(token) }).toEqual({ name, status: 401 });
    }
  });
});

describe.each<Mode>(MODES)('auth attacks over HTTP (%s mode)', (mode) => {
  let stack: SecureStack;
  let agency: FailingAgency;
  let available = true;
  const acme = { invoice: `in_authA${Date.now().toString(36)}`, customer: `cus_authA${Date.now().toString(36)}` };
  const globex = { invoice: `in_authG${Date.now().toString(36)}`, customer: `cus_authG${Date.now().toString(36)}` };
  let acmeView: any;
  let acmeDead: any;
  let hubJwk: crypto.JsonWebKey;
  let hubPrivatePem: string;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    // The agency refuses every call with a 422 (not retryable): each merchant gets a dead delivery.
    agency = await startFailingAgency(422);
    stack = await startSecureStack({ mode, outboundAlg: 'RS256', agencyUrl: agency.url });
    for (const [merchant, f] of [['acme', acme], ['globex', globex]] as const) {
      const { body, header } = signStripe(stripeEvents.paymentFailed({ ...f, amount: 4200, created: nowS() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: `Customer of ${merchant}` }), SECRETS.stripe[merchant]);
      const r = await fetch(`${stack.hubUrl}/v1/webhooks/stripe/${merchant}`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body });
      expect(r.status).toBe(200);
    }
    for (const merchant of ['acme', 'globex']) {
      await waitFor(async () => (await stack.get('/v1/deliveries?status=dead', merchant)).body?.data?.length > 0, 30_000, 100, `${merchant}'s dead delivery`);
    }
    acmeView = (await stack.get(`/v1/invoices/${acme.invoice}`)).body;
    acmeDead = (await stack.get('/v1/deliveries?status=dead')).body.data[0];
    hubJwk = ((await (await fetch(`${stack.hubUrl}/.well-known/jwks.json`)).json()) as { keys: crypto.JsonWebKey[] }).keys[0];
    hubPrivatePem = (await stack.hub.ctx.db.query<{ private_pem: string }>(`SELECT private_pem FROM hub_keys LIMIT 1`)).rows[0].private_pem;
  }, 90_000);

  afterAll(async () => {
    if (stack) await stack.stop();
    if (agency) await agency.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const claims = (over: Record<string, unknown> = {}) => ({ sub: 'acme', aud: HUB_ID, iss: HUB_ID, iat: nowS(), exp: nowS() + 600, ...over });
  const withToken = (path: string, token: string, method = 'GET') => send(`${stack.hubUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

  maybe('the set-up: acme sees its invoice, case and dead delivery with a hub-issued token', async () => {
    expect(acmeView).toMatchObject({ ref: acme.invoice, case: { id: expect.any(String) } });
    expect(acmeDead).toMatchObject({ status: 'dead', kind: 'agency.create_case', lastStatus: 422 });
    expect(hubJwk).toMatchObject({ kty: 'RSA' });
    expect((await withToken('/v1/me', stack.token('acme'))).status).toBe(200);
  });

  maybe('merchant tokens: alg none, key confusion, wrong aud/iss, expired, not yet valid, no exp, unknown sub — all 401', async () => {
    const jwkPem = crypto.createPublicKey({ key: hubJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    const jwkPkcs1 = crypto.createPublicKey({ key: hubJwk, format: 'jwk' }).export({ type: 'pkcs1', format: 'pem' }).toString();
    const S = SECRETS.merchantToken;
    const attacks: [string, string][] = [
      ['alg none', unsignedToken(claims())],
      ['alg NONE with a decoy signature', unsignedToken(claims(), 'NONE', 'YWJj')],
      ['HS256 keyed with the hub JWKS public key (spki PEM)', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, claims(), jwkPem)],
      ['HS256 keyed with the hub JWKS public key (pkcs1 PEM)', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, claims(), jwkPkcs1)],
      ['HS256 keyed with the JWK itself', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, claims(), JSON.stringify(hubJwk))],
      ['HS256 keyed with the JWK modulus', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, claims(), String(hubJwk.n))],
      ['RS256 signed with some key', jwt.sign(claims(), otherRsa.privateKey, { algorithm: 'RS256' })],
      ['RS256 signed with the hub own key', jwt.sign(claims(), hubPrivatePem, { algorithm: 'RS256', keyid: String(hubJwk.kid) })],
      ['ES256 signed with some key', jwt.sign(claims(), otherEc.privateKey, { algorithm: 'ES256' })],
      ['HS256 with another secret', handMadeHs256({ alg: 'HS256' }, claims(), 'not-the-merchant-token-secret-0123')],
      ['HS256 with the agency push secret', handMadeHs256({ alg: 'HS256' }, claims(), SECRETS.agencyToHub)],
      ['wrong aud', handMadeHs256({ alg: 'HS256' }, claims({ aud: 'another-hub' }), S)],
      ['aud missing', handMadeHs256({ alg: 'HS256' }, claims({ aud: undefined }), S)],
      ['wrong iss', handMadeHs256({ alg: 'HS256' }, claims({ iss: 'someone-else' }), S)],
      ['iss missing', handMadeHs256({ alg: 'HS256' }, claims({ iss: undefined }), S)],
      ['expired', handMadeHs256({ alg: 'HS256' }, claims({ iat: nowS() - 7200, exp: nowS() - 3600 }), S)],
      ['not yet valid (nbf in an hour)', handMadeHs256({ alg: 'HS256' }, claims({ nbf: nowS() + 3600 }), S)],
      ['no exp', handMadeHs256({ alg: 'HS256' }, claims({ exp: undefined }), S)],
      ['unknown sub', handMadeHs256({ alg: 'HS256' }, claims({ sub: 'initech' }), S)],
      ['no sub', handMadeHs256({ alg: 'HS256' }, claims({ sub: undefined }), S)],
      ['sub with a twist', handMadeHs256({ alg: 'HS256' }, claims({ sub: 'acme ' }), S)],
      ['a partner push token', jwt.sign({}, SECRETS.agencyToHub, { algorithm: 'HS256', issuer: 'refagency', audience: HUB_ID, expiresIn: 60 })],
      ['signature stripped', handMadeHs256({ alg: 'HS256' }, claims(), S).replace(/\.[^.]+$/, '.')],
      ['payload swapped under a valid signature', (() => {
        const [h, , sig] = stack.token('globex').split('.');
        return `${h}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.${sig}`;
      })()],
    ];
    for (const [name, token] of attacks) {
      for (const [path, method] of [['/v1/me', 'GET'], [`/v1/invoices/${acme.invoice}`, 'GET'], [`/v1/deliveries/${acmeDead.id}/retry`, 'POST']] as const) {
        const r = await withToken(path, token, method);
        figures.merchantAttacks++;
        expectClearRefusal(r, `${name} on ${method} ${path}`);
        expect({ name, path, status: r.status }).toEqual({ name, path, status: 401 });
      }
    }
    // None of them retried anything.
    expect((await stack.hub.ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [acmeDead.id])).rows[0].status).toBe('dead');
  });

  maybe("one merchant's valid token on another's customers, invoices, cases, sync log, deliveries and retries: 404 or empty, never the data", async () => {
    const g = stack.token('globex');
    const notFound: [string, string][] = [
      ['GET', `/v1/customers/${acme.customer}`],
      ['GET', `/v1/customers/${acmeView.customerId}`],
      ['GET', `/v1/invoices/${acme.invoice}`],
      ['GET', `/v1/invoices/${acmeView.id}`],
      ['GET', `/v1/cases/${acmeView.case.id}`],
      ['POST', `/v1/deliveries/${acmeDead.id}/retry`],
    ];
    for (const [method, path] of notFound) {
      const r = await withToken(path, g, method);
      figures.crossTenant++;
      expectClearRefusal(r, `globex ${method} ${path}`);
      expect({ path, status: r.status }).toEqual({ path, status: 404 });
      // The control: acme gets it (or, for the retry, its own dead row is retried below).
      if (method === 'GET') expect((await withToken(path, stack.token('acme'))).status).toBe(200);
    }
    const empty = [
      `/v1/cases?customer=${acme.customer}`,
      `/v1/sync-log?invoice=${acme.invoice}`,
      `/v1/sync-log?invoice=${acmeView.id}`,
      `/v1/sync-log?customer=${acme.customer}`,
      `/v1/sync-log?case=${acmeView.case.id}`,
    ];
    for (const path of empty) {
      const r = await withToken(path, g);
      figures.crossTenant++;
      expect({ path, status: r.status, data: r.json?.data }).toEqual({ path, status: 200, data: [] });
      expect((await withToken(path, stack.token('acme'))).json.data.length).toBeGreaterThan(0);
    }
    // Whole listings of globex mention none of acme's ids.
    const acmeIds = [acme.invoice, acme.customer, acmeView.id, acmeView.customerId, acmeView.case.id, 'Customer of acme'];
    for (const path of ['/v1/cases?limit=500', '/v1/sync-log?limit=500', '/v1/deliveries?status=dead&limit=500', '/v1/reports/leakage', '/v1/me']) {
      const r = await withToken(path, g);
      figures.crossTenant++;
      expect(r.status).toBe(200);
      for (const id of acmeIds) expect({ path, id, leaked: r.text.includes(id) }).toEqual({ path, id, leaked: false });
    }
    const globexDeliveries = (await withToken('/v1/deliveries?status=dead&limit=500', g)).json.data as { id: number }[];
    expect(globexDeliveries.length).toBeGreaterThan(0);
    expect(globexDeliveries.map((d) => d.id)).not.toContain(acmeDead.id);
    const globexLog = (await withToken('/v1/sync-log?limit=500', g)).json.data as { deliveryId: number | null }[];
    expect(globexLog.map((e) => e.deliveryId)).not.toContain(acmeDead.id);
    // The foreign retry changed nothing; acme's own retry works.
    expect((await stack.hub.ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [acmeDead.id])).rows[0].status).toBe('dead');
    expect((await withToken(`/v1/deliveries/${acmeDead.id}/retry`, stack.token('acme'), 'POST')).status).toBe(202);
  });

  maybe('partner push tokens: alg none, key confusion, wrong aud/iss, expired, not yet valid, no exp — all 401, nothing stored', async () => {
    const jwkPem = crypto.createPublicKey({ key: hubJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    const base = { iss: 'refagency', aud: HUB_ID, iat: nowS(), exp: nowS() + 60, jti: crypto.randomUUID() };
    const S = SECRETS.agencyToHub;
    const updateId = `upd_auth_${mode}_${Date.now().toString(36)}`;
    const body = JSON.stringify({ events: [{ id: updateId, seq: 1, caseId: 'case_x', caseReference: acmeView.case.id, claimReference: null, status: 'paid', occurredAt: new Date().toISOString() }] });
    const attacks: [string, string][] = [
      ['alg none', unsignedToken(base)],
      ['alg none with a decoy signature', unsignedToken(base, 'none', 'YWJj')],
      ['RS256 signed with some key', jwt.sign(base, otherRsa.privateKey, { algorithm: 'RS256' })],
      ['RS256 signed with the hub own key', jwt.sign(base, hubPrivatePem, { algorithm: 'RS256' })],
      ['HS256 keyed with the hub JWKS public key', handMadeHs256({ alg: 'HS256', typ: 'JWT' }, base, jwkPem)],
      ['HS256 with another secret', handMadeHs256({ alg: 'HS256' }, base, 'not-the-agency-secret-0123456789abcdef')],
      ['HS256 with the merchant token secret', handMadeHs256({ alg: 'HS256' }, base, SECRETS.merchantToken)],
      ['a merchant token', stack.token('acme')],
      ['wrong aud', handMadeHs256({ alg: 'HS256' }, { ...base, aud: 'another-hub' }, S)],
      ['wrong iss', handMadeHs256({ alg: 'HS256' }, { ...base, iss: 'otheragency' }, S)],
      ['expired (beyond the 60 s skew)', handMadeHs256({ alg: 'HS256' }, { ...base, iat: nowS() - 600, exp: nowS() - 120 }, S)],
      ['not yet valid (nbf beyond the 60 s skew)', handMadeHs256({ alg: 'HS256' }, { ...base, nbf: nowS() + 600 }, S)],
      ['no exp', handMadeHs256({ alg: 'HS256' }, { ...base, exp: undefined }, S)],
    ];
    for (const [name, token] of attacks) {
      const r = await send(`${stack.hubUrl}/v1/partners/refagency/events`, { body, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
      figures.partnerAttacks++;
      expectClearRefusal(r, name);
      expect({ name, status: r.status }).toEqual({ name, status: 401 });
    }
    expect((await stack.hub.ctx.db.query(`SELECT 1 FROM partner_updates WHERE update_id = $1`, [updateId])).rows).toHaveLength(0);
    // The control: the right token is accepted.
    const ok = await send(`${stack.hubUrl}/v1/partners/refagency/events`, { body: '{"events":[]}', headers: { 'content-type': 'application/json', authorization: `Bearer ${handMadeHs256({ alg: 'HS256', typ: 'JWT' }, base, S)}` } });
    expect(ok.status).toBe(200);
  });
});
