/**
 * What the agency receives on each reference-protocol call (contract §5): method, path, body,
 * Idempotency-Key on every mutating call, and a fresh bearer JWT for this partner.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createHubSigner, generateHubKey } from '../../../src/auth/hub-signer';
import { DeliveryError } from '../../../connectors/agency/types';
import { BASE_URL, HUB_ID, OUT_SECRET, PARTNER_ID, bearerOf, makeClient, submission, verifiedBearer } from './helpers';
import { recordingReply, useNock, type Received } from './use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);

describe('reference client: calls', () => {
  it('submits a case with POST /v1/cases and returns the agency id as partnerRef', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases').reply(recordingReply(seen, 201, { id: 'agc_42', status: 'submitted' }));

    const result = await makeClient().submitCase(submission, { idempotencyKey: 'outbox-1' });

    expect(result).toEqual({ partnerRef: 'agc_42', status: 'submitted' });
    expect(seen).toHaveLength(1);
    expect(seen[0].method).toBe('POST');
    expect(seen[0].body).toEqual(submission);
    expect(seen[0].headers['idempotency-key']).toBe('outbox-1');
    expect(seen[0].headers['content-type']).toMatch(/^application\/json/);
  });

  it('signs each request with an HS256 JWT for this partner: iss hub, aud partner, exp within 5 minutes, jti', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases').reply(recordingReply(seen, 201, { id: 'agc_42', status: 'submitted' }));
    agency().get('/v1/cases/agc_42').reply(recordingReply(seen, 200, { id: 'agc_42', reference: 'case_01H', status: 'submitted', claims: [] }));

    const client = makeClient();
    await client.submitCase(submission, { idempotencyKey: 'k1' });
    await client.getCase('agc_42');

    const [first, second] = seen.map((r) => verifiedBearer(r.headers, OUT_SECRET, 'HS256'));
    for (const claims of [first, second]) {
      expect(claims).toMatchObject({ iss: HUB_ID, aud: PARTNER_ID });
      expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(300);
      expect(claims.jti).toEqual(expect.any(String));
    }
    // A fresh token per request, never a cached one.
    expect(first.jti).not.toBe(second.jti);
    expect(jwt.decode(bearerOf(seen[0].headers), { complete: true })!.header.alg).toBe('HS256');
  });

  it.each(['RS256', 'ES256'] as const)('signs with the hub key under %s, verifiable with the published JWKS', async (alg) => {
    const hubKey = generateHubKey(alg);
    const seen: Received[] = [];
    agency().post('/v1/cases').reply(recordingReply(seen, 201, { id: 'agc_42', status: 'submitted' }));

    await makeClient({ hubKey, config: { auth: { outbound: { alg }, inbound: { alg: 'HS256', secret: 'x'.repeat(32) } } } }).submitCase(
      submission,
      { idempotencyKey: 'k1' },
    );

    const token = bearerOf(seen[0].headers);
    const header = jwt.decode(token, { complete: true })!.header;
    expect(header).toMatchObject({ alg, kid: hubKey.kid });
    const jwk = createHubSigner({ hubId: HUB_ID, key: hubKey })
      .jwks()
      .keys.find((k) => (k as { kid: string }).kid === header.kid) as crypto.JsonWebKey;
    const claims = verifiedBearer(seen[0].headers, crypto.createPublicKey({ key: jwk, format: 'jwk' }), alg);
    expect(claims).toMatchObject({ iss: HUB_ID, aud: PARTNER_ID });
  });

  it('adds a claim with POST /v1/cases/:id/claims', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases/agc_42/claims').reply(recordingReply(seen, 201, { reference: 'inv_2' }));
    const claim = { ...submission.claims[0], reference: 'inv_2' };

    await expect(makeClient().addClaim('agc_42', claim, { idempotencyKey: 'outbox-2' })).resolves.toBeUndefined();

    expect(seen[0]).toMatchObject({ method: 'POST', path: '/v1/cases/agc_42/claims', body: claim });
    expect(seen[0].headers['idempotency-key']).toBe('outbox-2');
  });

  it('reports a direct payment with POST /v1/cases/:id/claims/:reference/payments', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases/agc_42/claims/inv_1/payments').reply(recordingReply(seen, 202));
    const payment = { amount: { value: 4999, currency: 'EUR' }, paidAt: '2024-03-12T09:00:00.000Z', channel: 'stripe' };

    await makeClient().reportPayment('agc_42', 'inv_1', payment, { idempotencyKey: 'outbox-3' });

    expect(seen[0]).toMatchObject({ method: 'POST', path: '/v1/cases/agc_42/claims/inv_1/payments', body: payment });
    expect(seen[0].headers['idempotency-key']).toBe('outbox-3');
  });

  it('withdraws a whole case with { reason } only', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases/agc_42/withdraw').reply(recordingReply(seen, 202));

    await makeClient().withdraw('agc_42', { reason: 'paid_to_merchant' }, { idempotencyKey: 'outbox-4' });

    expect(seen[0]).toMatchObject({ method: 'POST', path: '/v1/cases/agc_42/withdraw', body: { reason: 'paid_to_merchant' } });
    expect(seen[0].headers['idempotency-key']).toBe('outbox-4');
  });

  it('withdraws one claim with the claimReference extension', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases/agc_42/withdraw').reply(recordingReply(seen, 202));

    await makeClient().withdraw('agc_42', { reason: 'credit_note', claimReference: 'inv_2' }, { idempotencyKey: 'outbox-5' });

    expect(seen[0].body).toEqual({ reason: 'credit_note', claimReference: 'inv_2' });
  });

  it('reads a case with GET /v1/cases/:id, without an Idempotency-Key', async () => {
    const seen: Received[] = [];
    agency()
      .get('/v1/cases/agc_42')
      .reply(
        recordingReply(seen, 200, {
          id: 'agc_42',
          reference: 'case_01H',
          status: 'in_collection',
          claims: [
            { reference: 'inv_1', status: 'paid', reason: 'paid_in_full', amountCollected: { value: 4999, currency: 'EUR' } },
            { reference: 'inv_2', status: 'in_collection', reason: null, amountCollected: { value: 0, currency: 'EUR' } },
          ],
        }),
      );

    const view = await makeClient().getCase('agc_42');

    expect(view).toEqual({
      id: 'agc_42',
      reference: 'case_01H',
      status: 'in_collection',
      claims: [
        { reference: 'inv_1', status: 'paid', reason: 'paid_in_full', amountCollected: { value: 4999, currency: 'EUR' } },
        { reference: 'inv_2', status: 'in_collection', amountCollected: { value: 0, currency: 'EUR' } },
      ],
    });
    expect(seen[0].method).toBe('GET');
    expect(seen[0].headers['idempotency-key']).toBeUndefined();
    expect(seen[0].body).toBeUndefined();
  });

  it('URL-encodes ids and references in paths', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases/a%2Fb%3Fc/claims/inv%20%231/payments').reply(recordingReply(seen, 202));

    await makeClient().reportPayment('a/b?c', 'inv #1', { amount: { value: 1, currency: 'EUR' }, paidAt: '2024-03-12T09:00:00Z', channel: 'x' }, {
      idempotencyKey: 'k',
    });

    expect(seen[0].path).toBe('/v1/cases/a%2Fb%3Fc/claims/inv%20%231/payments');
  });

  it('refuses `.`/`..` and empty ids, which URL parsing would turn into another resource', async () => {
    const client = makeClient();
    for (const id of ['..', '.', '']) {
      await expect(client.withdraw(id, { reason: 'x' }, { idempotencyKey: 'k' })).rejects.toMatchObject({ retryable: false });
    }
  });

  it('refuses a mutating call without a usable Idempotency-Key, before sending anything', async () => {
    const client = makeClient();
    await expect(client.submitCase(submission, { idempotencyKey: '' })).rejects.toBeInstanceOf(DeliveryError);
    await expect(client.addClaim('agc_42', submission.claims[0], { idempotencyKey: 'bad\nkey' })).rejects.toMatchObject({
      retryable: false,
      message: expect.stringMatching(/Idempotency-Key/),
    });
  });

  it('sends only the debtor fields the partner is configured to receive', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases').reply(recordingReply(seen, 201, { id: 'agc_42', status: 'submitted' }));

    await makeClient({ config: { debtorFields: ['email', 'country'] } }).submitCase(submission, { idempotencyKey: 'k' });

    expect((seen[0].body as { debtor: unknown }).debtor).toEqual({
      reference: 'cus_123',
      type: 'consumer',
      name: 'Jan de Vries',
      email: 'jan@example.nl',
      country: 'NL',
    });
  });

  it('keeps a base URL path prefix', async () => {
    const seen: Received[] = [];
    nock('http://agency.test').post('/api/v1/cases').reply(recordingReply(seen, 201, { id: 'agc_1', status: 'submitted' }));

    await makeClient({ config: { baseUrl: 'http://agency.test/api/' } }).submitCase(submission, { idempotencyKey: 'k' });

    expect(seen[0].path).toBe('/api/v1/cases');
  });

  it('fails permanently, before any request, when the hub key needed for RS256 is missing', async () => {
    const client = makeClient({ config: { auth: { outbound: { alg: 'RS256' }, inbound: { alg: 'HS256', secret: 'x'.repeat(32) } } } });
    await expect(client.submitCase(submission, { idempotencyKey: 'k' })).rejects.toMatchObject({
      retryable: false,
      message: expect.stringMatching(/cannot sign the token.*needs the hub key/),
    });
  });
});
