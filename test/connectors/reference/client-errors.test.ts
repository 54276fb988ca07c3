/**
 * How agency failures are classified for the outbox (design.md habit 7), how duplicate creates
 * after a lost answer are recovered (habit 3), and what the sync log receives (habit 8: never
 * the token).
 */
import http from 'node:http';
import net from 'node:net';
import { DeliveryError, type AgencyClient } from '../../../connectors/agency/types';
import { parseRetryAfter } from '../../../connectors/agency/reference/client';
import { BASE_URL, bearerOf, exchanges, makeClient, submission } from './helpers';
import { networkError, recordingReply, replyWith, useNock, type Received } from './use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);

async function failureOf(p: Promise<unknown>): Promise<DeliveryError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DeliveryError);
    return err as DeliveryError;
  }
  throw new Error('expected the call to fail');
}

const submit = (client: AgencyClient = makeClient()) => client.submitCase(submission, { idempotencyKey: 'outbox-1' });

describe('reference client: failure classification', () => {
  it.each([
    [500, { error: 'internal' }],
    [502, '<html>bad gateway</html>'],
    [503, { error: 'maintenance' }],
    [504, ''],
    [408, { error: 'request timeout' }],
  ])('treats %s as retryable, keeping status and answer', async (status, body) => {
    agency().post('/v1/cases').reply(status, body);
    const err = await failureOf(submit());
    expect(err).toMatchObject({ retryable: true, status });
    if (body !== '') expect(err.responseBody).toEqual(body);
  });

  it.each([
    [400, { error: 'validation', message: 'debtor.name is required' }],
    [401, { error: 'invalid_token' }],
    [403, { error: 'forbidden' }],
    [404, { error: 'not_found' }],
    [422, { error: 'unprocessable', fields: ['claims[0].principal'] }],
  ])('treats %s as permanent, keeping the agency answer for the dead letter', async (status, body) => {
    agency().post('/v1/cases').reply(status, body);
    const err = await failureOf(submit());
    expect(err).toMatchObject({ retryable: false, status, responseBody: body });
    expect(err.retryAfterMs).toBeUndefined();
    expect(err.message).toContain(String(status));
  });

  it('treats 429 as retryable and honours Retry-After in seconds', async () => {
    agency().post('/v1/cases').reply(429, { error: 'rate_limited' }, { 'Retry-After': '30' });
    expect(await failureOf(submit())).toMatchObject({ retryable: true, status: 429, retryAfterMs: 30_000, responseBody: { error: 'rate_limited' } });
  });

  it('honours Retry-After as an HTTP-date', async () => {
    const at = new Date(Date.now() + 120_000).toUTCString();
    agency().post('/v1/cases').reply(503, { error: 'maintenance' }, { 'Retry-After': at });
    const err = await failureOf(submit());
    expect(err.retryable).toBe(true);
    // HTTP-dates have one-second resolution.
    expect(err.retryAfterMs).toBeGreaterThan(115_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
  });

  it('treats a refused connection as retryable', async () => {
    agency().post('/v1/cases').replyWithError(networkError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:443'));
    const err = await failureOf(submit());
    expect(err).toMatchObject({ retryable: true, status: undefined });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('treats a reset connection as retryable (the Idempotency-Key makes resending safe)', async () => {
    agency().post('/v1/cases/agc_42/claims').replyWithError(networkError('ECONNRESET', 'socket hang up'));
    const err = await failureOf(makeClient().addClaim('agc_42', submission.claims[0], { idempotencyKey: 'k' }));
    expect(err).toMatchObject({ retryable: true });
    expect(err.message).toMatch(/ECONNRESET/);
  });

  it('treats a timeout (axios `timeout`) as retryable', async () => {
    agency().post('/v1/cases').delay(500).reply(201, { id: 'agc_42', status: 'submitted' });
    const err = await failureOf(submit(makeClient({ config: { timeoutMs: 50 } })));
    expect(err).toMatchObject({ retryable: true, status: undefined });
    expect(err.message).toMatch(/no answer within 50 ms/);
  });

  it('treats a 2xx whose body is not the protocol answer as permanent, keeping the body', async () => {
    agency().post('/v1/cases').reply(201, { status: 'submitted' });
    const err = await failureOf(submit());
    expect(err).toMatchObject({ retryable: false, status: 201, responseBody: { status: 'submitted' } });
    expect(err.message).toMatch(/id:/);
  });

  it('does not follow redirects, which would carry the token elsewhere', async () => {
    agency().post('/v1/cases').reply(307, '', { Location: 'http://elsewhere.test/v1/cases' });
    expect(await failureOf(submit())).toMatchObject({ retryable: false, status: 307 });
  });
});

describe('reference client: duplicates from an earlier attempt', () => {
  it('takes a 409 on create that names the existing case as success with that id', async () => {
    agency().post('/v1/cases').reply(409, { error: 'already_exists', message: 'case case_01H already exists', id: 'agc_42' });
    await expect(submit()).resolves.toEqual({ partnerRef: 'agc_42', status: 'submitted' });
  });

  it('reads the existing id beside a nested error object (the simulator\'s error shape)', async () => {
    agency()
      .post('/v1/cases')
      .reply(409, { error: { code: 'duplicate_reference', message: 'a case with reference "case_01H" already exists: agc_42' }, id: 'agc_42' });
    await expect(submit()).resolves.toEqual({ partnerRef: 'agc_42', status: 'submitted' });
  });

  it('keeps the status the agency gives with the existing case', async () => {
    agency().post('/v1/cases').reply(409, { id: 'agc_42', status: 'in_collection' });
    await expect(submit()).resolves.toEqual({ partnerRef: 'agc_42', status: 'in_collection' });
  });

  it('treats a 409 on create without an id as permanent', async () => {
    agency().post('/v1/cases').reply(409, { error: 'conflict' });
    expect(await failureOf(submit())).toMatchObject({ retryable: false, status: 409, responseBody: { error: 'conflict' } });
  });

  it('takes a 409 "already exists" on add-claim as success', async () => {
    agency().post('/v1/cases/agc_42/claims').reply(409, { error: 'already_exists', message: 'claim inv_2 already exists' });
    await expect(makeClient().addClaim('agc_42', submission.claims[0], { idempotencyKey: 'k' })).resolves.toBeUndefined();
  });

  it('takes a nested duplicate_claim error on add-claim as success', async () => {
    agency()
      .post('/v1/cases/agc_42/claims')
      .reply(409, { error: { code: 'duplicate_claim', message: 'case agc_42 already has a claim "inv_1"' } });
    await expect(makeClient().addClaim('agc_42', submission.claims[0], { idempotencyKey: 'k' })).resolves.toBeUndefined();
  });

  it.each([
    [{ error: 'case_closed', message: 'case agc_42 is closed' }],
    [{ error: { code: 'case_closed', message: 'case agc_42 is closed (paid); open a new case' } }],
    [{ error: { code: 'claim_closed', message: 'claim "inv_1" of agc_42 is already paid' } }],
  ])('keeps other 409s on add-claim (%j) as permanent failures', async (body) => {
    agency().post('/v1/cases/agc_42/claims').reply(409, body);
    expect(await failureOf(makeClient().addClaim('agc_42', submission.claims[0], { idempotencyKey: 'k' }))).toMatchObject({
      retryable: false,
      status: 409,
      responseBody: body,
    });
  });
});

describe('reference client: exchanges for the sync log', () => {
  it('reports method, url, bodies, status and latency of every exchange, without the token', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases').reply(recordingReply(seen, 201, { id: 'agc_42', status: 'submitted' }));
    const { log, onExchange } = exchanges();

    await makeClient().submitCase(submission, { idempotencyKey: 'k', onExchange });

    expect(log).toEqual([
      {
        method: 'POST',
        url: `${BASE_URL}/v1/cases`,
        requestBody: submission,
        status: 201,
        responseBody: { id: 'agc_42', status: 'submitted' },
        latencyMs: expect.any(Number),
      },
    ]);
    const token = bearerOf(seen[0].headers);
    expect(JSON.stringify(log)).not.toContain(token);
    expect(JSON.stringify(log)).not.toMatch(/authorization|bearer/i);
  });

  it('masks the token when the agency echoes it back in its answer', async () => {
    const seen: Received[] = [];
    agency()
      .post('/v1/cases')
      .reply(
        replyWith((received) => {
          seen.push(received);
          return [401, { error: 'invalid_token', detail: `rejected ${received.headers.authorization}` }, {}];
        }),
      );
    const { log, onExchange } = exchanges();

    const err = await failureOf(makeClient().submitCase(submission, { idempotencyKey: 'k', onExchange }));

    const token = bearerOf(seen[0].headers);
    expect(JSON.stringify(log)).not.toContain(token);
    expect(JSON.stringify(err.responseBody)).not.toContain(token);
    expect(err.message).not.toContain(token);
    expect(log[0].responseBody).toEqual({ error: 'invalid_token', detail: 'rejected Bearer [redacted]' });
  });

  it('reports failed exchanges with their error and no status', async () => {
    agency().get('/v1/cases/agc_42').replyWithError(networkError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:443'));
    const { log, onExchange } = exchanges();

    await failureOf(makeClient().getCase('agc_42', { onExchange }));

    expect(log).toEqual([
      { method: 'GET', url: `${BASE_URL}/v1/cases/agc_42`, requestBody: undefined, latencyMs: expect.any(Number), error: expect.stringMatching(/ECONNREFUSED/) },
    ]);
  });

  it('reports error answers with status and body', async () => {
    agency().post('/v1/cases/agc_42/withdraw').reply(422, { error: 'unknown reason' });
    const { log, onExchange } = exchanges();

    await failureOf(makeClient().withdraw('agc_42', { reason: 'nope' }, { idempotencyKey: 'k', onExchange }));

    expect(log[0]).toMatchObject({ method: 'POST', status: 422, requestBody: { reason: 'nope' }, responseBody: { error: 'unknown reason' } });
  });

  it('does not let a failing sync-log writer change the outcome of a delivery', async () => {
    agency().post('/v1/cases').reply(201, { id: 'agc_42', status: 'submitted' });
    const onExchange = () => {
      throw new Error('log store down');
    };
    await expect(makeClient().submitCase(submission, { idempotencyKey: 'k', onExchange })).resolves.toEqual({ partnerRef: 'agc_42', status: 'submitted' });
  });
});

describe('reference client: real sockets on loopback', () => {
  // nock simulates errors; these two check the same classification against Node's own.
  beforeAll(() => nock.enableNetConnect('127.0.0.1'));
  afterAll(() => nock.disableNetConnect());

  it('classifies a real ECONNREFUSED as retryable', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const err = await failureOf(submit(makeClient({ config: { baseUrl: `http://127.0.0.1:${port}` } })));
    expect(err).toMatchObject({ retryable: true });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('classifies a real agency that never answers as a retryable timeout', async () => {
    const silent = http.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const err = await failureOf(submit(makeClient({ config: { baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 100 } })));
      expect(err).toMatchObject({ retryable: true });
      expect(err.message).toMatch(/no answer within 100 ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-03-10T12:00:00Z');
  it.each([
    ['120', 120_000],
    ['0', 0],
    ['Sun, 10 Mar 2024 12:01:00 GMT', 60_000],
    ['Sun, 10 Mar 2024 11:59:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    [undefined, undefined],
  ])('reads %p as %p ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});
