/**
 * Agency → hub push (contract §5): `Authorization: Bearer <JWT>` signed by the agency with the
 * key configured for the partner (iss = partner id, aud = hub id, exp required), only the
 * configured algorithm accepted; then the body `{ events: [update…] }`. Negative cases included:
 * wrong key, alg none, key confusion, wrong claims, expired, no exp, not yet valid, bad body.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { PushRejection, type AgencyClient } from '../../../connectors/agency/types';
import { HUB_ID, IN_SECRET, PARTNER_ID, makeClient, rawUpdate } from './helpers';

const agencyRsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const agencyRsaPublicPem = agencyRsa.publicKey.export({ format: 'pem', type: 'spki' }).toString();
const agencyEc = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const agencyEcPublicPem = agencyEc.publicKey.export({ format: 'pem', type: 'spki' }).toString();

const now = () => Math.floor(Date.now() / 1000);
const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

function hsToken(claims: object = {}, opts: jwt.SignOptions = {}, secret: string = IN_SECRET): string {
  return jwt.sign({ iss: PARTNER_ID, aud: HUB_ID, exp: now() + 120, jti: crypto.randomUUID(), ...claims }, secret, { algorithm: 'HS256', ...opts });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const body = { events: [rawUpdate({ id: 'u1', seq: 1 }), rawUpdate({ id: 'u2', seq: 2, status: 'paid', reason: 'paid_in_full' })] };

function rejection(client: AgencyClient, headers: Record<string, string | undefined>, payload: unknown = body): PushRejection {
  try {
    client.verifyPush!(headers, payload);
  } catch (err) {
    expect(err).toBeInstanceOf(PushRejection);
    return err as PushRejection;
  }
  throw new Error('expected the push to be rejected');
}

describe('verifyPush with HS256 configured', () => {
  const client = makeClient();

  it('accepts a valid token and returns the canonical updates in order', () => {
    const updates = client.verifyPush!(bearer(hsToken()), body);
    expect(updates.map((u) => [u.id, u.status, u.reason])).toEqual([
      ['u1', 'in_collection', undefined],
      ['u2', 'paid', 'paid_in_full'],
    ]);
  });

  it('reads the header whatever its case, and the body as raw bytes too', () => {
    expect(client.verifyPush!({ Authorization: `Bearer ${hsToken()}` }, Buffer.from(JSON.stringify(body)))).toHaveLength(2);
    expect(client.verifyPush!({ authorization: `bearer ${hsToken()}` }, JSON.stringify(body))).toHaveLength(2);
  });

  it('accepts an empty batch', () => {
    expect(client.verifyPush!(bearer(hsToken()), { events: [] })).toEqual([]);
  });

  it('refuses a missing or non-Bearer Authorization header with 401', () => {
    expect(rejection(client, {})).toMatchObject({ status: 401, message: expect.stringMatching(/missing Authorization/) });
    expect(rejection(client, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })).toMatchObject({ status: 401 });
    expect(rejection(client, { authorization: 'Bearer' })).toMatchObject({ status: 401 });
  });

  it('refuses a token signed with another secret', () => {
    const err = rejection(client, bearer(hsToken({}, {}, 'another-secret-that-is-long-enough-000')));
    expect(err).toMatchObject({ status: 401, message: expect.stringMatching(/invalid signature/) });
  });

  it('refuses an unsigned token (alg: none)', () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: PARTNER_ID, aud: HUB_ID, exp: now() + 120 })}.`;
    expect(rejection(client, bearer(unsigned))).toMatchObject({ status: 401 });
  });

  it('refuses an RS256 token when HS256 is configured (key confusion)', () => {
    const rs = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID, exp: now() + 120 }, agencyRsa.privateKey, { algorithm: 'RS256' });
    expect(rejection(client, bearer(rs))).toMatchObject({ status: 401, message: expect.stringMatching(/invalid algorithm/) });
  });

  it('refuses a token from another issuer', () => {
    expect(rejection(client, bearer(hsToken({ iss: 'otheragency' })))).toMatchObject({ status: 401, message: expect.stringMatching(/issuer/) });
  });

  it('refuses a token for another audience', () => {
    expect(rejection(client, bearer(hsToken({ aud: 'another-hub' })))).toMatchObject({ status: 401, message: expect.stringMatching(/audience/) });
  });

  it('refuses an expired token', () => {
    expect(rejection(client, bearer(hsToken({ iat: now() - 7200, exp: now() - 3600 })))).toMatchObject({ status: 401, message: 'token expired' });
  });

  it('refuses a token without exp', () => {
    const noExp = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID }, IN_SECRET, { algorithm: 'HS256' });
    expect(jwt.decode(noExp)).not.toHaveProperty('exp');
    expect(rejection(client, bearer(noExp))).toMatchObject({ status: 401, message: expect.stringMatching(/exp is required/) });
  });

  it('refuses a token that is not yet valid (nbf in the future)', () => {
    expect(rejection(client, bearer(hsToken({ nbf: now() + 3600, exp: now() + 7200 })))).toMatchObject({
      status: 401,
      message: expect.stringMatching(/not yet valid/),
    });
  });

  it('tolerates a minute of clock drift', () => {
    expect(client.verifyPush!(bearer(hsToken({ iat: now() - 200, exp: now() - 30 })), body)).toHaveLength(2);
  });

  it('checks the token before looking at the body', () => {
    expect(rejection(client, bearer(hsToken({}, {}, 'another-secret-that-is-long-enough-000')), { nonsense: true })).toMatchObject({ status: 401 });
  });

  it.each([
    [{ nonsense: true }, /events: /],
    [{ events: [{ ...rawUpdate(), seq: 'one' }] }, /events\[0\]\.seq/],
    [{ events: [rawUpdate(), { ...rawUpdate(), occurredAt: 'yesterday' }] }, /events\[1\]\.occurredAt/],
    [{ events: [{ ...rawUpdate(), claimReference: undefined }] }, /events\[0\]\.claimReference/],
    [{ events: [{ ...rawUpdate(), amountCollected: { value: 12.5, currency: 'EUR' } }] }, /events\[0\]\.amountCollected\.value/],
    ['{not json', /not valid JSON/],
    [null, /\(body\)/],
  ])('refuses a malformed body with 400 naming the field (%#)', (payload, field) => {
    const err = rejection(client, bearer(hsToken()), payload);
    expect(err.status).toBe(400);
    expect(err.message).toMatch(field);
  });

  it('refuses an event whose status the mapping does not know, with 400 naming it', () => {
    const err = rejection(client, bearer(hsToken()), { events: [rawUpdate(), rawUpdate({ id: 'u2', status: 'legal_action' })] });
    expect(err).toMatchObject({ status: 400, message: expect.stringMatching(/events\[1\]\.status: "legal_action"/) });
  });
});

describe('verifyPush with RS256 configured', () => {
  const client = makeClient({
    config: { auth: { outbound: { alg: 'HS256', secret: 'o'.repeat(32) }, inbound: { alg: 'RS256', publicKey: agencyRsaPublicPem } } },
  });

  it('accepts a token signed with the agency key', () => {
    const token = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID, jti: crypto.randomUUID() }, agencyRsa.privateKey, { algorithm: 'RS256', expiresIn: 60 });
    expect(client.verifyPush!(bearer(token), body)).toHaveLength(2);
  });

  it('refuses an HS256 token keyed with the agency public key (classic key confusion)', () => {
    const forged = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID, exp: now() + 60 }, agencyRsaPublicPem, { algorithm: 'HS256' });
    expect(rejection(client, bearer(forged))).toMatchObject({ status: 401, message: expect.stringMatching(/invalid algorithm/) });
  });

  it('refuses an RS256 token signed with another key', () => {
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID }, other.privateKey, { algorithm: 'RS256', expiresIn: 60 });
    expect(rejection(client, bearer(token))).toMatchObject({ status: 401, message: expect.stringMatching(/invalid signature/) });
  });

  it('refuses alg none here too', () => {
    const unsigned = `${b64url({ alg: 'none' })}.${b64url({ iss: PARTNER_ID, aud: HUB_ID, exp: now() + 120 })}.`;
    expect(rejection(client, bearer(unsigned))).toMatchObject({ status: 401 });
  });
});

describe('verifyPush with ES256 configured', () => {
  it('accepts a token signed with the agency P-256 key and refuses RS256', () => {
    const client = makeClient({
      config: { auth: { outbound: { alg: 'HS256', secret: 'o'.repeat(32) }, inbound: { alg: 'ES256', publicKey: agencyEcPublicPem } } },
    });
    const es = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID, jti: crypto.randomUUID() }, agencyEc.privateKey, { algorithm: 'ES256', expiresIn: 60 });
    expect(client.verifyPush!(bearer(es), body)).toHaveLength(2);
    const rs = jwt.sign({ iss: PARTNER_ID, aud: HUB_ID }, agencyRsa.privateKey, { algorithm: 'RS256', expiresIn: 60 });
    expect(rejection(client, bearer(rs))).toMatchObject({ status: 401 });
  });
});

describe('push tokens: lifetime, one-time id and key rotation (issue 13, item 4)', () => {
  const PREVIOUS = crypto.randomBytes(32).toString('base64url');
  const client = makeClient({ config: { auth: { outbound: { alg: 'HS256', secret: 'o'.repeat(32) }, inbound: { alg: 'HS256', secret: IN_SECRET, previousSecrets: [PREVIOUS] } } } });

  it('refuses a token without iat, or living longer than 5 minutes (exp - iat), even when signed right', () => {
    expect(rejection(client, bearer(hsToken({}, { noTimestamp: true })))).toMatchObject({ status: 401, message: expect.stringMatching(/iat is required/) });
    expect(rejection(client, bearer(hsToken({ iat: now(), exp: now() + 301 })))).toMatchObject({ status: 401, message: expect.stringMatching(/lifetime .* exceeds 300 s/) });
    expect(client.verifyPush!(bearer(hsToken({ iat: now(), exp: now() + 300 })), body)).toHaveLength(2);
    const longer = makeClient({ config: { auth: { outbound: { alg: 'HS256', secret: 'o'.repeat(32) }, inbound: { alg: 'HS256', secret: IN_SECRET, maxTokenLifetimeSeconds: 900 } } } });
    expect(longer.verifyPush!(bearer(hsToken({ iat: now(), exp: now() + 900 })), body)).toHaveLength(2);
  });

  it('refuses a token without a jti (nothing to refuse a replay by), and reports the jti and expiry of a good one', () => {
    expect(rejection(client, bearer(hsToken({ jti: undefined })))).toMatchObject({ status: 401, message: expect.stringMatching(/jti is required/) });
    expect(rejection(client, bearer(hsToken({ jti: 'short' })))).toMatchObject({ status: 401, message: expect.stringMatching(/jti is required/) });
    const seen: { jti: string; expiresAt: Date }[] = [];
    client.verifyPush!(bearer(hsToken({ jti: 'token-id-0001', exp: now() + 100 })), body, (t) => seen.push(t));
    expect(seen).toHaveLength(1);
    expect(seen[0].jti).toBe('token-id-0001');
    expect(Math.abs(seen[0].expiresAt.getTime() - (now() + 100 + 60) * 1000)).toBeLessThan(2000);
  });

  it('accepts the previous secret during a rotation, and refuses any other', () => {
    expect(client.verifyPush!(bearer(hsToken({}, {}, PREVIOUS)), body)).toHaveLength(2);
    expect(client.verifyPush!(bearer(hsToken({}, {}, IN_SECRET)), body)).toHaveLength(2);
    expect(rejection(client, bearer(hsToken({}, {}, crypto.randomBytes(32).toString('base64url'))))).toMatchObject({ status: 401, message: expect.stringMatching(/invalid signature/) });
    // An expired token signed with the previous secret is refused as expired, not tried further.
    expect(rejection(client, bearer(hsToken({ iat: now() - 400, exp: now() - 200 }, {}, PREVIOUS)))).toMatchObject({ status: 401, message: 'token expired' });
  });
});

