/**
 * The Riverty transaction feed pulled by sortNumber (0, 1, 2, … without holes) and mapped to
 * canonical updates through mappings/agency/riverty.yaml: paging by the cursor, a hole held open
 * until it fills (or its grace runs out), decimal amounts, and words the mapping does not know
 * refused so the cursor does not move past them.
 */
import { DeliveryError } from '../../../connectors/agency/types';
import { UnmappedValueError } from '../../../connectors/agency/riverty/normalize';
import { BASE_URL, CLAIM_NUMBER, REQUEST_ID, exchanges, fakeClock, makeClient, newToken, tx } from './helpers';
import { recordingReply, useNock, type Received } from '../reference/use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);
const withToken = () => agency().post('/oauth/token').reply(200, { access_token: newToken(), token_type: 'Bearer', expires_in: 3600 });
const feed = (seen: Received[], ...transactions: ReturnType<typeof tx>[]) => agency().get('/v1/transactions').query(true).reply(recordingReply(seen, 200, { transactions }));
const at = (n: number) => tx({ transactionId: `trx_${n}`, sortNumber: n, createdAt: new Date(Date.parse('2024-03-10T12:00:00Z') + n * 1000).toISOString() });

describe('riverty connector: pulling the transaction feed', () => {
  it('starts at sortNumber 0, then asks from the one after the cursor; the cursor is the last sortNumber', async () => {
    const seen: Received[] = [];
    withToken();
    feed(seen, at(0), at(1), at(2));
    feed(seen, at(3));
    feed(seen);

    const client = makeClient();
    const first = await client.pullUpdates(null, 3);
    const second = await client.pullUpdates(first.next, 3);
    const third = await client.pullUpdates(second.next, 3);

    expect(seen.map((r) => r.path)).toEqual([
      '/v1/transactions?fromSortNumber=0&limit=3',
      '/v1/transactions?fromSortNumber=3&limit=3',
      '/v1/transactions?fromSortNumber=4&limit=3',
    ]);
    expect(first.updates.map((u) => u.seq)).toEqual([0, 1, 2]);
    expect(first.next).toBe('2');
    expect(second).toMatchObject({ next: '3', updates: [expect.objectContaining({ id: 'trx_3', seq: 3 })] });
    // Nothing new: the same cursor back, so the hub stops paging.
    expect(third).toEqual({ updates: [], next: '3' });
  });

  it('keeps a null cursor null while the feed is empty', async () => {
    withToken();
    feed([]);
    await expect(makeClient().pullUpdates(null, 10)).resolves.toEqual({ updates: [], next: null });
  });

  it('caps the page size at 1000 and falls back to the configured limit for nonsense', async () => {
    const seen: Received[] = [];
    withToken();
    feed(seen);
    feed(seen);
    const client = makeClient({ config: { pull: { limit: 25 } } });
    await client.pullUpdates(null, 5000);
    await client.pullUpdates(null, Number.NaN);
    expect(seen.map((r) => new URL(`http://x${r.path}`).searchParams.get('limit'))).toEqual(['1000', '25']);
  });

  it('maps each transaction to a canonical update: ids, seq, case and claim, amounts from decimal strings', async () => {
    withToken();
    feed(
      [],
      tx({ transactionId: 'trx_a', sortNumber: 0, type: 'CONFIRMATION', objectType: 'INVOICE', status: 'REGISTERED', invoiceNumber: null }),
      tx({
        transactionId: 'trx_b',
        sortNumber: 1,
        status: 'PAYMENT_PLAN',
        paymentPlan: { numberOfInstallments: 3, installmentAmount: '16.67', currency: 'EUR', firstDueDate: '2024-04-01' },
        comment: 'plan agreed by phone',
      }),
      tx({ transactionId: 'trx_c', sortNumber: 2, type: 'ACCOUNTING_DOCUMENT', documentType: 'AGENCY_PAYMENTS', status: 'PARTIALLY_PAID', collectedAmount: '16.67', currency: 'EUR' }),
      tx({ transactionId: 'trx_d', sortNumber: 3, type: 'CLOSING', status: undefined, closingType: 'COMPLETED_BY_SETTLEMENT', collectedAmount: '50.00', currency: 'EUR', createdAt: '2024-03-11T09:30:00+02:00' }),
      tx({ transactionId: 'trx_e', sortNumber: 4, type: 'CLOSING', status: undefined, closingType: 'RETURNED_TO_CLIENT' }),
      tx({ transactionId: 'trx_f', sortNumber: 5, type: 'REJECTION', objectType: 'INVOICE', status: 'REJECTED', rejectionReason: 'AMOUNT_TOO_LOW', invoiceNumber: null, claimNumber: null }),
    );

    const { updates, next } = await makeClient().pullUpdates(null, 10);

    expect(next).toBe('5');
    const base = { caseId: CLAIM_NUMBER, caseReference: 'cse_01H', claimReference: 'clm_1' };
    expect(updates).toEqual([
      { ...base, id: 'trx_a', seq: 0, claimReference: null, status: 'submitted', occurredAt: '2024-03-10T12:00:00.000Z' },
      {
        ...base,
        id: 'trx_b',
        seq: 1,
        status: 'arrangement',
        arrangement: { installments: 3, amount: { value: 1667, currency: 'EUR' }, firstDueAt: '2024-04-01T00:00:00.000Z' },
        note: 'plan agreed by phone',
        occurredAt: '2024-03-10T12:00:00.000Z',
      },
      { ...base, id: 'trx_c', seq: 2, status: 'partially_paid', amountCollected: { value: 1667, currency: 'EUR' }, occurredAt: '2024-03-10T12:00:00.000Z' },
      {
        ...base,
        id: 'trx_d',
        seq: 3,
        status: 'paid',
        reason: 'paid_via_arrangement',
        amountCollected: { value: 5000, currency: 'EUR' },
        note: 'Riverty closing type COMPLETED_BY_SETTLEMENT',
        occurredAt: '2024-03-11T07:30:00.000Z',
      },
      { ...base, id: 'trx_e', seq: 4, status: 'closed', note: 'Riverty closing type RETURNED_TO_CLIENT', occurredAt: '2024-03-10T12:00:00.000Z' },
      // Before a claim number exists the hand-over's requestId names the case.
      { ...base, id: 'trx_f', seq: 5, caseId: REQUEST_ID, claimReference: null, status: 'closed', note: 'rejected by Riverty (INVOICE): AMOUNT_TOO_LOW', occurredAt: '2024-03-10T12:00:00.000Z' },
    ]);
  });

  it.each([
    ['PAYMENT_BEFORE_HANDOVER', 'paid', 'paid_to_merchant'],
    ['FULL_PAYMENT', 'paid', 'paid_in_full'],
    ['INSOLVENCY', 'uncollectible', 'debtor_insolvent'],
    ['DEBTOR_DECEASED', 'uncollectible', 'debtor_deceased'],
    ['UNKNOWN_ADDRESS', 'uncollectible', 'debtor_untraceable'],
    ['PERIOD_OF_LIMITATION_REACHED', 'uncollectible', 'time_barred'],
    ['RECALLED_BY_CLIENT', 'withdrawn', 'withdrawn_by_merchant'],
    ['CLAIM_DISPUTED', 'closed', 'disputed_upheld'],
    ['COMPLETED_BY_CREDIT', 'closed', 'credit_note'],
  ])('maps the closing type %s to %s / %s', async (closingType, status, reason) => {
    withToken();
    feed([], tx({ type: 'CLOSING', status: undefined, closingType }));
    const { updates } = await makeClient().pullUpdates(null, 10);
    expect(updates[0]).toMatchObject({ status, reason });
  });

  it('refuses a page with a status word the mapping does not know, naming it, and does not move', async () => {
    withToken();
    feed([], at(0), tx({ transactionId: 'trx_x', sortNumber: 1, status: 'LEGAL_ACTION' }));

    const err = await makeClient()
      .pullUpdates(null, 10)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnmappedValueError);
    expect(err).toMatchObject({ field: 'status', value: 'LEGAL_ACTION', transaction: expect.objectContaining({ transactionId: 'trx_x' }) });
    expect((err as Error).message).toMatch(/trx_x .*status "LEGAL_ACTION" is not in mappings\/agency\/riverty.yaml statuses/);
  });

  it('refuses an unknown closing type, and a status word given as a closing type where no reason is mapped', async () => {
    withToken();
    feed([], tx({ type: 'CLOSING', status: undefined, closingType: 'BANKRUPTCY' }));
    feed([], tx({ type: 'CLOSING', status: undefined, closingType: 'PAID' }));
    const client = makeClient();
    await expect(client.pullUpdates(null, 10)).rejects.toMatchObject({ field: 'status', value: 'BANKRUPTCY' });
    // PAID ends in `paid`, which must say why: not a closing type.
    await expect(client.pullUpdates(null, 10)).rejects.toMatchObject({ field: 'reason', value: 'PAID' });
  });

  it('refuses `constructor` and other prototype names as words', async () => {
    withToken();
    feed([], tx({ status: 'constructor' }));
    await expect(makeClient().pullUpdates(null, 10)).rejects.toBeInstanceOf(UnmappedValueError);
  });

  it('treats a malformed page as a permanent failure naming the field', async () => {
    withToken();
    agency()
      .get('/v1/transactions')
      .query(true)
      .reply(200, { transactions: [{ ...tx(), collectedAmount: 16.67, currency: 'EUR' }] });
    const err = await makeClient()
      .pullUpdates(null, 10)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err).toMatchObject({ retryable: false });
    expect((err as Error).message).toMatch(/transactions\[0\]\.collectedAmount/);
  });

  it('refuses a cursor that is not one of this feed', async () => {
    await expect(makeClient().pullUpdates('c_17', 10)).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/not a cursor/) });
  });

  describe('a hole in the sortNumbers (a transaction numbered but not listed yet)', () => {
    it('returns what is after the hole but keeps the cursor before it, then moves on once it fills', async () => {
      const clock = fakeClock();
      const seen: Received[] = [];
      withToken();
      feed(seen, at(3), at(5), at(6)); // 4 is missing
      feed(seen, at(5), at(6)); // still missing
      feed(seen, at(4), at(5), at(6)); // there it is
      const client = makeClient({ now: clock.now });

      const first = await client.pullUpdates('2', 10);
      expect(first.updates.map((u) => u.seq)).toEqual([3, 5, 6]);
      expect(first.next).toBe(`3@${clock.now()}`);

      clock.advance(10_000);
      const second = await client.pullUpdates(first.next, 10);
      // The same hole keeps its clock, so the hub sees the same cursor and stops paging.
      expect(second.next).toBe(first.next);

      const third = await client.pullUpdates(second.next, 10);
      expect(third.updates.map((u) => u.seq)).toEqual([4, 5, 6]);
      expect(third.next).toBe('6');
      expect(seen.map((r) => new URL(`http://x${r.path}`).searchParams.get('fromSortNumber'))).toEqual(['3', '4', '4']);
    });

    it('steps over a hole that stays empty longer than pull.gapGraceSeconds', async () => {
      const clock = fakeClock();
      withToken();
      feed([], at(1), at(3));
      feed([], at(3));
      feed([], at(3), at(4));
      const client = makeClient({ now: clock.now, config: { pull: { gapGraceSeconds: 60 } } });

      const first = await client.pullUpdates('0', 10);
      expect(first.next).toBe(`1@${clock.now()}`);
      clock.advance(59_000);
      expect((await client.pullUpdates(first.next, 10)).next).toBe(first.next);
      clock.advance(1_000);
      const stepped = await client.pullUpdates(first.next, 10);
      expect(stepped.next).toBe('4');
    });

    it('starts a new clock for a new hole further on', async () => {
      const clock = fakeClock();
      withToken();
      feed([], at(1), at(3));
      feed([], at(2), at(3), at(5));
      const client = makeClient({ now: clock.now });
      const first = await client.pullUpdates('0', 10);
      clock.advance(5_000);
      const second = await client.pullUpdates(first.next, 10);
      expect(second.next).toBe(`3@${clock.now()}`);
    });

    it('holds the cursor at -1 when sortNumber 0 itself is missing', async () => {
      const clock = fakeClock();
      withToken();
      feed([], at(1));
      await expect(makeClient({ now: clock.now }).pullUpdates(null, 10)).resolves.toMatchObject({ next: `-1@${clock.now()}` });
    });
  });

  it('classifies a failing pull like any other call and reports the exchange', async () => {
    withToken();
    agency().get('/v1/transactions').query(true).reply(503, { error: 'maintenance' }, { 'Retry-After': '5' });
    const { log, onExchange } = exchanges();

    await expect(makeClient().pullUpdates(null, 10, { onExchange })).rejects.toMatchObject({ retryable: true, retryAfterMs: 5000 });
    expect(log.map((x) => `${x.method} ${x.url} ${x.status}`)).toEqual([
      `POST ${BASE_URL}/oauth/token 200`,
      `GET ${BASE_URL}/v1/transactions?fromSortNumber=0&limit=10 503`,
    ]);
  });
});
