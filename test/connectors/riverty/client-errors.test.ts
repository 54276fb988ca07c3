/**
 * How Riverty failures are classified for the outbox (design.md habit 7): network errors,
 * timeouts, 408, 429 and 5xx retry (honouring Retry-After); other 4xx are final with the answer
 * kept for the dead letter; the sync log never decides an outcome.
 */
import http from 'node:http';
import net from 'node:net';
import { DeliveryError } from '../../../connectors/agency/types';
import { BASE_URL, REQUEST_ID, makeClient, newToken, submission } from './helpers';
import { networkError, useNock } from '../reference/use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);
const withToken = (base = BASE_URL) => nock(base).post('/oauth/token').reply(200, { access_token: newToken(), token_type: 'Bearer', expires_in: 3600 });

async function failureOf(p: Promise<unknown>): Promise<DeliveryError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DeliveryError);
    return err as DeliveryError;
  }
  throw new Error('expected the call to fail');
}

const submit = (client = makeClient()) => client.submitCase(submission, { idempotencyKey: 'case-1' });

describe('riverty connector: failure classification', () => {
  it.each([
    [500, { error: 'internal' }],
    [502, '<html>bad gateway</html>'],
    [503, { error: 'maintenance' }],
    [504, ''],
    [408, { error: 'request timeout' }],
  ])('treats %s as retryable, keeping status and answer', async (status, body) => {
    withToken();
    agency().post('/v1/claims').reply(status, body);
    const err = await failureOf(submit());
    expect(err).toMatchObject({ retryable: true, status });
    if (body !== '') expect(err.responseBody).toEqual(body);
  });

  it.each([
    [400, { error: { code: 'invalid_body', message: 'customer.lastName: a PRIVATE customer needs a lastName' } }],
    [403, { error: 'forbidden' }],
    [404, { error: 'not_found' }],
    [409, { error: { code: 'conflict' } }],
    [422, { error: 'unprocessable' }],
  ])('treats %s as permanent, keeping the agency answer for the dead letter', async (status, body) => {
    withToken();
    agency().post('/v1/claims').reply(status, body);
    const err = await failureOf(submit());
    expect(err).toMatchObject({ retryable: false, status, responseBody: body });
    expect(err.retryAfterMs).toBeUndefined();
    expect(err.message).toContain(String(status));
  });

  it('treats 429 as retryable and honours Retry-After', async () => {
    withToken();
    agency().post('/v1/claims').reply(429, { error: 'rate_limited' }, { 'Retry-After': '30' });
    expect(await failureOf(submit())).toMatchObject({ retryable: true, status: 429, retryAfterMs: 30_000 });
  });

  it('treats a reset connection as retryable (Idempotency-Key and paymentNumber make resending safe)', async () => {
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).replyWithError(networkError('ECONNRESET', 'socket hang up'));
    const err = await failureOf(makeClient().reportPayment(REQUEST_ID, 'clm_1', { amount: { value: 1, currency: 'EUR' }, paidAt: '2024-03-12T09:00:00Z', channel: 'x' }, { idempotencyKey: 'k' }));
    expect(err).toMatchObject({ retryable: true, status: undefined });
    expect(err.message).toMatch(/ECONNRESET/);
  });

  it('treats a timeout as retryable', async () => {
    withToken();
    agency().post('/v1/claims').delay(500).reply(202, { requestId: REQUEST_ID });
    const err = await failureOf(submit(makeClient({ config: { timeoutMs: 50 } })));
    expect(err).toMatchObject({ retryable: true, status: undefined });
    expect(err.message).toMatch(/no answer within 50 ms/);
  });

  it('treats a 2xx whose body is not the answer as permanent, keeping the body', async () => {
    withToken();
    agency().post('/v1/claims').reply(202, { claimNumber: '1' });
    expect(await failureOf(submit())).toMatchObject({ retryable: false, status: 202, responseBody: { claimNumber: '1' }, message: expect.stringMatching(/requestId/) });
  });

  it('does not follow redirects, which would carry the token elsewhere', async () => {
    withToken();
    agency().post('/v1/claims').reply(307, '', { Location: 'http://elsewhere.test/v1/claims' });
    expect(await failureOf(submit())).toMatchObject({ retryable: false, status: 307 });
  });

  it('does not let a failing sync-log writer change the outcome', async () => {
    withToken();
    agency().post('/v1/claims').reply(202, { requestId: REQUEST_ID });
    await expect(
      makeClient().submitCase(submission, {
        idempotencyKey: 'k',
        onExchange: () => {
          throw new Error('log down');
        },
      }),
    ).resolves.toEqual({ partnerRef: REQUEST_ID, status: 'submitted' });
  });
});

describe('riverty connector: real sockets on loopback', () => {
  beforeAll(() => nock.enableNetConnect('127.0.0.1'));
  afterAll(() => nock.disableNetConnect());

  it('classifies a token endpoint that refuses connections as retryable', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const err = await failureOf(submit(makeClient({ config: { baseUrl: `http://127.0.0.1:${port}` } })));
    expect(err).toMatchObject({ retryable: true });
    expect(err.message).toMatch(/oauth\/token: ECONNREFUSED/);
  });

  it('classifies a token endpoint that never answers as a retryable timeout', async () => {
    const silent = http.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const err = await failureOf(submit(makeClient({ config: { baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 100 } })));
      expect(err).toMatchObject({ retryable: true });
      expect(err.message).toMatch(/no token within 100 ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
