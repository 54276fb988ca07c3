/**
 * Hold and resume at a reference-protocol agency (the hub's documented extension of contract §5,
 * like withdraw's claimReference): `POST /v1/cases/:id/hold|resume` with `{ reason, claimReference? }`,
 * an Idempotency-Key, and the same failure taxonomy as every other call.
 */
import { BASE_URL, makeClient } from './helpers';
import { recordingReply, useNock, type Received } from './use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);

describe('reference client: hold and resume', () => {
  it.each(['hold', 'resume'] as const)('%s a whole case with { reason } and the row’s Idempotency-Key', async (action) => {
    const seen: Received[] = [];
    agency().post(`/v1/cases/agc_42/${action}`).reply(recordingReply(seen, 202, { id: 'agc_42', status: 'on_hold' }));

    await makeClient()[action]!('agc_42', { reason: 'customer called' }, { idempotencyKey: `${action}-1` });

    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', path: `/v1/cases/agc_42/${action}`, body: { reason: 'customer called' } });
    expect(seen[0].headers['idempotency-key']).toBe(`${action}-1`);
    expect(seen[0].headers.authorization).toMatch(/^Bearer /);
  });

  it('holds one claim with the claimReference extension', async () => {
    const seen: Received[] = [];
    agency().post('/v1/cases/agc_42/hold').reply(recordingReply(seen, 202));

    await makeClient().hold!('agc_42', { reason: 'disputed by phone', claimReference: 'inv_2' }, { idempotencyKey: 'k' });

    expect(seen[0].body).toEqual({ reason: 'disputed by phone', claimReference: 'inv_2' });
  });

  it('classifies failures like the other calls: 409 final with the answer kept, 503 retryable', async () => {
    agency().post('/v1/cases/agc_42/resume').reply(409, { error: { code: 'case_closed', message: 'closed' } });
    agency().post('/v1/cases/agc_42/hold').reply(503, { error: 'maintenance' }, { 'Retry-After': '2' });
    const client = makeClient();

    await expect(client.resume!('agc_42', { reason: 'x' }, { idempotencyKey: 'k1' })).rejects.toMatchObject({
      retryable: false,
      status: 409,
      responseBody: { error: { code: 'case_closed', message: 'closed' } },
    });
    await expect(client.hold!('agc_42', { reason: 'x' }, { idempotencyKey: 'k2' })).rejects.toMatchObject({ retryable: true, retryAfterMs: 2000 });
  });

  it('refuses a call without a usable Idempotency-Key, or with `..` as the case id, before sending', async () => {
    const client = makeClient();
    await expect(client.hold!('agc_42', { reason: 'x' }, { idempotencyKey: '' })).rejects.toMatchObject({ retryable: false });
    await expect(client.resume!('..', { reason: 'x' }, { idempotencyKey: 'k' })).rejects.toMatchObject({ retryable: false });
  });
});
