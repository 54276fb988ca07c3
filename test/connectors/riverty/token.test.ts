/**
 * OAuth2 client credentials for the Riverty connector (RFC 6749 §4.4): the token is fetched once
 * and shared, refreshed before it expires, refreshed once when the agency answers 401 mid-run (and
 * the call sent again), and neither the token nor the client secret reaches a sync-log record.
 */
import { DeliveryError } from '../../../connectors/agency/types';
import { TOKEN_REFRESH_SKEW_MS } from '../../../connectors/agency/riverty/token';
import {
  BASE_URL,
  CLAIM_NUMBER,
  CLIENT_ID,
  CLIENT_SECRET,
  REQUEST_ID,
  bearerOf,
  exchanges,
  fakeClock,
  formOf,
  makeClient,
  newToken,
  submission,
  tokenReply,
} from './helpers';
import { recordingReply, useNock, type Received } from '../reference/use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);
const emptyFeed = { transactions: [] };

describe('riverty connector: OAuth2 tokens', () => {
  it('fetches one token with the client credentials in the form body and uses it as the bearer', async () => {
    const tokenCalls: Received[] = [];
    const calls: Received[] = [];
    const token = newToken();
    agency().post('/oauth/token').reply(tokenReply(tokenCalls, token));
    agency().post('/v1/claims').reply(recordingReply(calls, 202, { requestId: REQUEST_ID }));

    await makeClient().submitCase(submission, { idempotencyKey: 'k1' });

    expect(tokenCalls).toHaveLength(1);
    expect(tokenCalls[0].headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(formOf(tokenCalls[0])).toEqual({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
    expect(tokenCalls[0].headers.authorization).toBeUndefined();
    expect(bearerOf(calls[0])).toBe(token);
  });

  it('can authenticate with HTTP Basic instead, and asks for an audience when configured', async () => {
    const tokenCalls: Received[] = [];
    nock('http://identity.test').post('/oauth/token').reply(tokenReply(tokenCalls));
    agency().get('/v1/transactions').query(true).reply(200, emptyFeed);

    await makeClient({ config: { tokenUrl: 'http://identity.test/oauth/token', tokenAuth: 'client_secret_basic', audience: 'https://api.example' } }).pullUpdates(null, 10);

    expect(formOf(tokenCalls[0])).toEqual({ grant_type: 'client_credentials', audience: 'https://api.example' });
    const basic = Buffer.from(String(tokenCalls[0].headers.authorization).replace(/^Basic /, ''), 'base64').toString();
    expect(basic).toBe(`${CLIENT_ID}:${CLIENT_SECRET}`);
  });

  it('caches the token: three calls, one token request', async () => {
    const tokenCalls: Received[] = [];
    const calls: Received[] = [];
    agency().post('/oauth/token').once().reply(tokenReply(tokenCalls));
    agency().get('/v1/transactions').query(true).times(3).reply(recordingReply(calls, 200, emptyFeed));

    const client = makeClient();
    await client.pullUpdates(null, 10);
    await client.pullUpdates(null, 10);
    await client.pullUpdates(null, 10);

    expect(tokenCalls).toHaveLength(1);
    expect(new Set(calls.map(bearerOf)).size).toBe(1);
    expect(client.tokens.fetched).toBe(1);
  });

  it('shares one token request between calls made at the same time', async () => {
    const tokenCalls: Received[] = [];
    agency().post('/oauth/token').delay(50).once().reply(tokenReply(tokenCalls));
    agency().get('/v1/transactions').query(true).times(4).reply(200, emptyFeed);

    const client = makeClient();
    await Promise.all([1, 2, 3, 4].map(() => client.pullUpdates(null, 10)));

    expect(tokenCalls).toHaveLength(1);
  });

  it('refreshes the token once it is about to expire (expires_in minus a skew)', async () => {
    const clock = fakeClock();
    const tokenCalls: Received[] = [];
    const calls: Received[] = [];
    const [first, second] = [newToken(), newToken()];
    agency().post('/oauth/token').reply(tokenReply(tokenCalls, first, 3600));
    agency().post('/oauth/token').reply(tokenReply(tokenCalls, second, 3600));
    agency().get('/v1/transactions').query(true).times(3).reply(recordingReply(calls, 200, emptyFeed));

    const client = makeClient({ now: clock.now });
    await client.pullUpdates(null, 10);
    clock.advance(3600_000 - TOKEN_REFRESH_SKEW_MS - 1000); // still comfortably valid
    await client.pullUpdates(null, 10);
    clock.advance(2000); // inside the skew: refreshed before the agency would refuse it
    await client.pullUpdates(null, 10);

    expect(calls.map(bearerOf)).toEqual([first, first, second]);
    expect(tokenCalls).toHaveLength(2);
  });

  it('scales the skew down for short-lived tokens, so a 1-second token is still reused', async () => {
    const clock = fakeClock();
    const tokenCalls: Received[] = [];
    agency().post('/oauth/token').once().reply(tokenReply(tokenCalls, newToken(), 1));
    agency().get('/v1/transactions').query(true).times(2).reply(200, emptyFeed);

    const client = makeClient({ now: clock.now });
    await client.pullUpdates(null, 10);
    clock.advance(500);
    await client.pullUpdates(null, 10);

    expect(tokenCalls).toHaveLength(1);
  });

  it('on a 401 mid-run drops the token, fetches a new one and sends the call once more (same Idempotency-Key)', async () => {
    const tokenCalls: Received[] = [];
    const calls: Received[] = [];
    const [stale, fresh] = [newToken(), newToken()];
    agency().post('/oauth/token').reply(tokenReply(tokenCalls, stale));
    agency().post('/oauth/token').reply(tokenReply(tokenCalls, fresh));
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(recordingReply(calls, 401, { error: { code: 'token_expired' } }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }));
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(recordingReply(calls, 200, { requestId: REQUEST_ID, status: 'PROCESSED', claimNumber: CLAIM_NUMBER }));
    agency().post(`/v1/claims/${CLAIM_NUMBER}/recalls`).reply(recordingReply(calls, 202, { claimNumber: CLAIM_NUMBER }));

    await makeClient().withdraw(REQUEST_ID, { reason: 'withdrawn_by_merchant' }, { idempotencyKey: 'withdraw-1' });

    expect(tokenCalls).toHaveLength(2);
    expect(calls.map((c) => `${c.method} ${c.path} ${bearerOf(c)}`)).toEqual([
      `GET /v1/requests/${REQUEST_ID} ${stale}`,
      `GET /v1/requests/${REQUEST_ID} ${fresh}`,
      `POST /v1/claims/${CLAIM_NUMBER}/recalls ${fresh}`,
    ]);
    expect(calls[2].headers['idempotency-key']).toBe('withdraw-1');
  });

  it('retries a mutating call refused 401 once, with the same key and body', async () => {
    const calls: Received[] = [];
    agency().post('/oauth/token').times(2).reply(() => [200, { access_token: newToken(), token_type: 'bearer', expires_in: 3600 }]);
    agency().post('/v1/claims').reply(recordingReply(calls, 401, { error: { code: 'invalid_token' } }));
    agency().post('/v1/claims').reply(recordingReply(calls, 202, { requestId: REQUEST_ID }));

    await expect(makeClient().submitCase(submission, { idempotencyKey: 'case-1' })).resolves.toEqual({ partnerRef: REQUEST_ID, status: 'submitted' });

    expect(calls).toHaveLength(2);
    expect(calls[1].headers['idempotency-key']).toBe('case-1');
    expect(calls[1].body).toEqual(calls[0].body);
    expect(bearerOf(calls[1])).not.toBe(bearerOf(calls[0]));
  });

  it('gives up after one refresh: a second 401 is a permanent failure with the answer kept', async () => {
    agency().post('/oauth/token').times(2).reply(() => [200, { access_token: newToken(), token_type: 'Bearer', expires_in: 3600 }]);
    agency().get('/v1/transactions').query(true).times(2).reply(401, { error: { code: 'invalid_token', message: 'no' } });

    const err = await makeClient()
      .pullUpdates(null, 10)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err).toMatchObject({ retryable: false, status: 401, responseBody: { error: { code: 'invalid_token', message: 'no' } } });
  });

  it('treats invalid_client at the token endpoint as permanent (configuration), before calling the agency', async () => {
    agency().post('/oauth/token').reply(401, { error: 'invalid_client', error_description: 'unknown client' });

    const err = await makeClient()
      .submitCase(submission, { idempotencyKey: 'k' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ retryable: false, status: 401, responseBody: { error: 'invalid_client', error_description: 'unknown client' } });
  });

  it('treats a token endpoint that is down as retryable, honouring Retry-After', async () => {
    agency().post('/oauth/token').reply(503, { error: 'temporarily_unavailable' }, { 'Retry-After': '7' });
    await expect(makeClient().pullUpdates(null, 10)).rejects.toMatchObject({ retryable: true, status: 503, retryAfterMs: 7000 });
  });

  it('refuses a token answer that is not a bearer token', async () => {
    agency().post('/oauth/token').reply(200, { access_token: 'x', token_type: 'mac', expires_in: 60 });
    await expect(makeClient().pullUpdates(null, 10)).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/token_type: must be Bearer/) });
  });

  it('trusts a token without expires_in for a minute only', async () => {
    const clock = fakeClock();
    const tokenCalls: Received[] = [];
    agency().post('/oauth/token').times(2).reply(tokenReply(tokenCalls, newToken(), null));
    agency().get('/v1/transactions').query(true).times(3).reply(200, emptyFeed);

    const client = makeClient({ now: clock.now });
    await client.pullUpdates(null, 10);
    clock.advance(30_000);
    await client.pullUpdates(null, 10);
    clock.advance(30_000);
    await client.pullUpdates(null, 10);
    expect(tokenCalls).toHaveLength(2);
  });

  it('never puts the client secret or an access token in an exchange record, even when echoed back', async () => {
    const [first, second] = [newToken(), newToken()];
    agency().post('/oauth/token').reply(200, { access_token: first, token_type: 'Bearer', expires_in: 3600 });
    agency().post('/oauth/token').reply(200, { access_token: second, token_type: 'Bearer', expires_in: 3600, scope: 'claims' });
    agency().post('/v1/claims').reply(401, { error: { code: 'invalid_token', message: `token ${first} expired` } });
    agency().post('/v1/claims').reply(202, { requestId: REQUEST_ID, echo: `Bearer ${second}; client ${CLIENT_SECRET}` });
    const { log, onExchange } = exchanges();

    await makeClient().submitCase(submission, { idempotencyKey: 'k', onExchange });

    const text = JSON.stringify(log);
    for (const secret of [CLIENT_SECRET, first, second]) expect(text).not.toContain(secret);
    expect(log.map((x) => `${x.method} ${new URL(x.url).pathname} ${x.status}`)).toEqual([
      'POST /oauth/token 200',
      'POST /v1/claims 401',
      'POST /oauth/token 200',
      'POST /v1/claims 202',
    ]);
    expect(log[0].requestBody).toEqual({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: '[redacted]' });
    expect(log[0].responseBody).toEqual({ access_token: '[redacted]', token_type: 'Bearer', expires_in: 3600 });
    expect(log[1].responseBody).toEqual({ error: { code: 'invalid_token', message: 'token [redacted] expired' } });
    expect(log[3].responseBody).toEqual({ requestId: REQUEST_ID, echo: 'Bearer [redacted]; client [redacted]' });
  });

  it('keeps the client secret out of the error of a failed token request', async () => {
    agency().post('/oauth/token').reply(400, { error: 'invalid_request', error_description: `bad secret ${CLIENT_SECRET}` });
    const { log, onExchange } = exchanges();

    const err = (await makeClient()
      .pullUpdates(null, 10, { onExchange })
      .catch((e: unknown) => e)) as DeliveryError;
    expect(err.retryable).toBe(false);
    expect(err.message).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(err.responseBody)).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(log)).not.toContain(CLIENT_SECRET);
  });
});
