/**
 * Scheduled pull (contract §5: `GET /v1/updates?after=&limit=`): cursor paging, and updates
 * mapped to canonical ones through mappings/agency/reference.yaml — an unmapped status stops
 * the page instead of being applied as something else.
 */
import { UnmappedValueError } from '../../../connectors/agency/reference/normalize';
import { DeliveryError } from '../../../connectors/agency/types';
import { BASE_URL, exchanges, makeClient, rawUpdate } from './helpers';
import { recordingReply, useNock, type Received } from './use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);

describe('reference client: pullUpdates', () => {
  it('asks from the start without `after`, then follows `next`', async () => {
    const seen: Received[] = [];
    agency()
      .get('/v1/updates')
      .query({ limit: '2' })
      .reply(recordingReply(seen, 200, { updates: [rawUpdate({ id: 'u1', seq: 1 }), rawUpdate({ id: 'u2', seq: 2 })], next: 'c2' }));
    agency()
      .get('/v1/updates')
      .query({ after: 'c2', limit: '2' })
      .reply(recordingReply(seen, 200, { updates: [rawUpdate({ id: 'u3', seq: 3, status: 'paid', reason: 'paid_in_full' })], next: 'c3' }));

    const client = makeClient();
    const first = await client.pullUpdates(null, 2);
    const second = await client.pullUpdates(first.next, 2);

    expect(seen.map((r) => r.path)).toEqual(['/v1/updates?limit=2', '/v1/updates?after=c2&limit=2']);
    expect(first.updates.map((u) => u.id)).toEqual(['u1', 'u2']);
    expect(first.next).toBe('c2');
    expect(second.updates).toEqual([
      {
        id: 'u3',
        seq: 3,
        caseId: 'agc_42',
        caseReference: 'case_01H',
        claimReference: 'inv_1',
        status: 'paid',
        reason: 'paid_in_full',
        occurredAt: '2024-03-10T12:00:00.000Z',
      },
    ]);
    expect(second.next).toBe('c3');
    expect(seen[0].headers['idempotency-key']).toBeUndefined();
    expect(seen[0].headers.authorization).toMatch(/^Bearer /);
  });

  it('keeps its place when the agency has nothing newer and gives no next', async () => {
    agency().get('/v1/updates').query({ after: 'c3', limit: '100' }).reply(200, { updates: [], next: null });
    await expect(makeClient().pullUpdates('c3', 100)).resolves.toEqual({ updates: [], next: 'c3' });
  });

  it('URL-encodes the cursor and bounds the limit', async () => {
    const seen: Received[] = [];
    agency().get('/v1/updates').query(true).reply(recordingReply(seen, 200, { updates: [], next: 'x' }));
    await makeClient().pullUpdates('a&b=c d', 50_000);
    expect(seen[0].path).toBe('/v1/updates?after=a%26b%3Dc+d&limit=1000');
  });

  it('maps every field of an update: whole-case updates, amounts, arrangements, notes, offsets to UTC', async () => {
    agency()
      .get('/v1/updates')
      .query(true)
      .reply(200, {
        updates: [
          rawUpdate({
            id: 'u9',
            seq: 9,
            claimReference: null,
            status: 'arrangement',
            amountCollected: { value: 1000, currency: 'EUR' },
            arrangement: { installments: 3, amount: { value: 1667, currency: 'EUR' }, firstDueAt: '2024-04-01T00:00:00+02:00' },
            note: 'plan agreed by phone',
            occurredAt: '2024-03-10T14:00:00+02:00',
          }),
        ],
        next: 9,
      });

    const { updates, next } = await makeClient().pullUpdates(null, 10);

    expect(updates[0]).toEqual({
      id: 'u9',
      seq: 9,
      caseId: 'agc_42',
      caseReference: 'case_01H',
      claimReference: null,
      status: 'arrangement',
      amountCollected: { value: 1000, currency: 'EUR' },
      arrangement: { installments: 3, amount: { value: 1667, currency: 'EUR' }, firstDueAt: '2024-03-31T22:00:00.000Z' },
      note: 'plan agreed by phone',
      occurredAt: '2024-03-10T12:00:00.000Z',
    });
    expect(next).toBe('9');
  });

  it('refuses a page with a status the mapping does not know, naming it', async () => {
    agency()
      .get('/v1/updates')
      .query(true)
      .reply(200, { updates: [rawUpdate({ id: 'u1' }), rawUpdate({ id: 'u2', status: 'legal_action' })], next: 'c2' });

    const err = await makeClient()
      .pullUpdates(null, 10)
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(UnmappedValueError);
    expect(err).toMatchObject({ field: 'status', value: 'legal_action', update: expect.objectContaining({ id: 'u2' }) });
    expect((err as Error).message).toMatch(/u2: status "legal_action" is not in the agency mapping/);
  });

  it('refuses an update with an unknown reason, and the hub-only pending_handover status', async () => {
    agency().get('/v1/updates').query(true).reply(200, { updates: [rawUpdate({ status: 'closed', reason: 'bankrupt' })], next: 'c' });
    await expect(makeClient().pullUpdates(null, 10)).rejects.toMatchObject({ field: 'reason', value: 'bankrupt' });

    agency().get('/v1/updates').query(true).reply(200, { updates: [rawUpdate({ status: 'pending_handover' })], next: 'c' });
    await expect(makeClient().pullUpdates(null, 10)).rejects.toMatchObject({ field: 'status', value: 'pending_handover' });
  });

  it('treats a malformed page as a permanent failure naming the field', async () => {
    agency()
      .get('/v1/updates')
      .query(true)
      .reply(200, { updates: [{ ...rawUpdate(), amountCollected: { value: 10.5, currency: 'EUR' } }], next: 'c' });

    const err = await makeClient()
      .pullUpdates(null, 10)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err).toMatchObject({ retryable: false });
    expect((err as Error).message).toMatch(/updates\[0\]\.amountCollected\.value/);
  });

  it('classifies a failing pull like any other call and reports the exchange', async () => {
    agency().get('/v1/updates').query(true).reply(503, { error: 'maintenance' }, { 'Retry-After': '5' });
    const { log, onExchange } = exchanges();

    await expect(makeClient().pullUpdates(null, 10, { onExchange })).rejects.toMatchObject({ retryable: true, retryAfterMs: 5000 });
    expect(log).toEqual([expect.objectContaining({ method: 'GET', url: `${BASE_URL}/v1/updates?limit=10`, status: 503 })]);
  });
});
