/**
 * Tokens that can be rotated, expire for good and be revoked (issue 13, item 4):
 *  - merchant tokens name their key (`kid`), the previous secrets stay valid during a rotation, a
 *    lifetime above the cap is refused even when signed with the right key, and a merchant's
 *    `tokensIssuedAfter` revokes that merchant's older tokens only;
 *  - a partner push token is good for one push: the same token again is refused 401 and stores
 *    nothing (embedded hub, real HTTP).
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { HttpError } from '../../../src/http/errors';
import { issueMerchantToken, merchantTokenKid, verifyMerchantToken, type MerchantAuthOptions } from '../../../src/http/merchant-auth';
import { startStack, SECRETS, type Stack } from '../../support/stack';
import { rawUpdate } from '../../connectors/reference/helpers';

const HUB_ID = 'collection-hub';
const secret = () => crypto.randomBytes(32).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

function refusal(token: string, opts: MerchantAuthOptions): string {
  try {
    verifyMerchantToken(`Bearer ${token}`, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).status).toBe(401);
    return (err as Error).message;
  }
  throw new Error('expected the token to be refused');
}

describe('merchant tokens: rotation, lifetime cap, revocation', () => {
  const current = secret();
  const previous = secret();
  const opts: MerchantAuthOptions = { hubId: HUB_ID, secret: current, previousSecrets: [previous], merchantIds: new Set(['acme', 'globex']), maxLifetimeSeconds: 3600 };

  it('names its key in the header, and the kid cannot be turned back into the secret', () => {
    const token = issueMerchantToken({ hubId: HUB_ID, secret: current, merchantId: 'acme', ttlSeconds: 600 });
    const header = jwt.decode(token, { complete: true })!.header;
    expect(header.kid).toBe(merchantTokenKid(current));
    expect(header.kid).not.toContain(current.slice(0, 8));
    expect(verifyMerchantToken(`Bearer ${token}`, opts)).toBe('acme');
  });

  it('accepts tokens of the previous secret during a rotation, and refuses them once it is removed', () => {
    const old = issueMerchantToken({ hubId: HUB_ID, secret: previous, merchantId: 'acme', ttlSeconds: 600 });
    expect(verifyMerchantToken(`Bearer ${old}`, opts)).toBe('acme');
    expect(refusal(old, { ...opts, previousSecrets: [] })).toMatch(/unknown key id/);
    // A token of a secret that was never configured, kid or not.
    const stranger = secret();
    expect(refusal(issueMerchantToken({ hubId: HUB_ID, secret: stranger, merchantId: 'acme', ttlSeconds: 600 }), opts)).toMatch(/unknown key id/);
    expect(refusal(jwt.sign({}, stranger, { algorithm: 'HS256', subject: 'acme', audience: HUB_ID, issuer: HUB_ID, expiresIn: 600 }), opts)).toMatch(/invalid signature/);
  });

  it('refuses a token living longer than the cap even with the right key, and one without iat', () => {
    expect(refusal(issueMerchantToken({ hubId: HUB_ID, secret: current, merchantId: 'acme', ttlSeconds: 3601 }), opts)).toMatch(/lifetime .* exceeds the maximum of 3600 s/);
    expect(verifyMerchantToken(`Bearer ${issueMerchantToken({ hubId: HUB_ID, secret: current, merchantId: 'acme', ttlSeconds: 3600 })}`, opts)).toBe('acme');
    const noIat = jwt.sign({ exp: nowS() + 60 }, current, { algorithm: 'HS256', subject: 'acme', audience: HUB_ID, issuer: HUB_ID, noTimestamp: true });
    expect(refusal(noIat, opts)).toMatch(/iat is required/);
    const future = jwt.sign({ iat: nowS() + 3000, exp: nowS() + 3500 }, current, { algorithm: 'HS256', subject: 'acme', audience: HUB_ID, issuer: HUB_ID });
    expect(refusal(future, opts)).toMatch(/issued in the future/);
  });

  it("revokes one merchant's tokens issued before its tokensIssuedAfter, not the next ones nor another merchant's", () => {
    const before = jwt.sign({ iat: nowS() - 120 }, current, { algorithm: 'HS256', subject: 'acme', audience: HUB_ID, issuer: HUB_ID, expiresIn: 600, keyid: merchantTokenKid(current) });
    const globexBefore = jwt.sign({ iat: nowS() - 120 }, current, { algorithm: 'HS256', subject: 'globex', audience: HUB_ID, issuer: HUB_ID, expiresIn: 600, keyid: merchantTokenKid(current) });
    const revoking = { ...opts, issuedAfter: new Map([['acme', new Date(Date.now() - 60_000)]]) };
    expect(refusal(before, revoking)).toMatch(/revoked/);
    expect(verifyMerchantToken(`Bearer ${globexBefore}`, revoking)).toBe('globex');
    expect(verifyMerchantToken(`Bearer ${issueMerchantToken({ hubId: HUB_ID, secret: current, merchantId: 'acme', ttlSeconds: 600 })}`, revoking)).toBe('acme');
  });
});

describe('the merchant-token settings in the config (embedded hub)', () => {
  let stack: Stack;
  afterAll(async () => {
    await stack?.stop();
  });

  it('a merchant with tokensIssuedAfter in the future gets 401 revoked; the other merchant is unaffected', async () => {
    stack = await startStack({ mode: 'embedded', acmeExtra: `    tokensIssuedAfter: "${new Date(Date.now() + 3600_000).toISOString()}"` });
    const acme = await stack.get('/v1/me', 'acme');
    expect(acme.status).toBe(401);
    expect(acme.body.error.message).toMatch(/revoked/);
    expect((await stack.get('/v1/me', 'globex')).status).toBe(200);
  }, 60_000);
});

describe('partner push tokens are single-use (embedded hub, real HTTP)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 60_000 } });
    stack.sim.pause();
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const push = (token: string, events: unknown[]) =>
    fetch(`${stack.hubUrl}/v1/partners/refagency/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ events }) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const sign = (jti?: string) => jwt.sign(jti ? { jti } : {}, SECRETS.agencyToHub, { algorithm: 'HS256', issuer: 'refagency', audience: HUB_ID, expiresIn: 60 });

  it('refuses the same token a second time, stores nothing for it, and takes a fresh token', async () => {
    const token = sign(crypto.randomUUID());
    const first = await push(token, [rawUpdate({ id: 'upd_replay_1', seq: 1 })]);
    expect(first).toMatchObject({ status: 200, body: { new: 1 } });
    const again = await push(token, [rawUpdate({ id: 'upd_replay_2', seq: 2 })]);
    expect(again.status).toBe(401);
    expect(again.body.error.message).toMatch(/token replayed/);
    const stored = (await stack.hub.ctx.db.query<{ update_id: string }>(`SELECT update_id FROM partner_updates WHERE update_id LIKE 'upd_replay_%' ORDER BY update_id`)).rows.map((r) => r.update_id);
    expect(stored).toEqual(['upd_replay_1']);
    expect(await push(sign(crypto.randomUUID()), [rawUpdate({ id: 'upd_replay_2', seq: 2 })])).toMatchObject({ status: 200, body: { new: 1 } });
    expect((await push(sign(), [])).status).toBe(401); // no jti: nothing to refuse a replay by
  });
});
