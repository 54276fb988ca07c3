/**
 * What the Riverty-shaped agency receives on each call: Riverty's request shapes (customer,
 * contracts, invoices), amounts as decimal strings converted exactly, the claim number resolved
 * from the hand-over's requestId, Idempotency-Key on every mutating call and Riverty's own
 * paymentNumber on payments.
 */
import { DeliveryError } from '../../../connectors/agency/types';
import { CLAIM_PENDING_RETRY_MS } from '../../../connectors/agency/riverty/client';
import { BASE_URL, CLAIM_NUMBER, REQUEST_ID, makeClient, newToken, submission } from './helpers';
import { recordingReply, useNock, type Received } from '../reference/use-nock';

const nock = useNock();
const agency = () => nock(BASE_URL);
const withToken = () => agency().post('/oauth/token').reply(200, { access_token: newToken(), token_type: 'Bearer', expires_in: 3600 });
const processed = (extra: Record<string, unknown> = {}) => ({ requestId: REQUEST_ID, status: 'PROCESSED', claimNumber: CLAIM_NUMBER, contractNumber: 'cse_01H', ...extra });

describe('riverty connector: calls', () => {
  it('hands a case over as a Riverty claim: customer, one contract per case, invoices with decimal amounts', async () => {
    const seen: Received[] = [];
    withToken();
    agency().post('/v1/claims').reply(recordingReply(seen, 202, { requestId: REQUEST_ID }));

    const result = await makeClient().submitCase(submission, { idempotencyKey: 'case-cse_01H' });

    expect(result).toEqual({ partnerRef: REQUEST_ID, status: 'submitted' });
    expect(seen[0].headers['idempotency-key']).toBe('case-cse_01H');
    expect(seen[0].body).toEqual({
      customer: {
        customerNumber: 'cust_123',
        type: 'PRIVATE',
        preferredLanguage: 'nl',
        firstName: 'Jan',
        lastName: 'de Vries',
        addresses: [{ type: 'BILLING', street: 'Dorpsstraat', houseNumber: '12a', zipCode: '1234 AB', city: 'Utrecht', countryCode: 'NL' }],
        communicationChannels: [
          { type: 'EMAIL', value: 'jan@example.nl' },
          { type: 'PHONE', value: '+31612345678' },
        ],
      },
      contracts: [
        {
          contractNumber: 'cse_01H',
          invoices: [
            {
              invoiceNumber: 'clm_1',
              originalAmount: '49.99',
              remainingAmount: '49.99',
              currency: 'EUR',
              invoiceDate: '2024-02-01',
              dueDate: '2024-03-01',
              additionalProperties: [
                { key: 'merchantInvoiceNumber', value: 'INV-0001' },
                { key: 'paymentFailure', value: 'stripe:insufficient_funds (insufficient_funds)' },
              ],
            },
            {
              invoiceNumber: 'clm_2',
              originalAmount: '1.00',
              remainingAmount: '1.00',
              currency: 'EUR',
              additionalProperties: [{ key: 'paymentFailure', value: 'stripe:expired_card (card_expired)' }],
            },
          ],
        },
      ],
      costs: [{ type: 'COLLECTION_COSTS', amount: '40.00', currency: 'EUR', description: 'WIK minimum (NL)' }],
      additionalProperties: [
        { key: 'creditorId', value: 'acme' },
        { key: 'creditorName', value: 'Acme Subscriptions BV' },
      ],
    });
  });

  it.each([
    ['JPY', 1000, '1000'],
    ['KWD', 1234, '1.234'],
    ['EUR', 5, '0.05'],
    ['EUR', 123456789, '1234567.89'],
  ])('writes %s %i minor units as "%s"', async (currency, value, decimal) => {
    const seen: Received[] = [];
    withToken();
    agency().post('/v1/claims').reply(recordingReply(seen, 202, { requestId: REQUEST_ID }));
    const one = { ...submission, collectionCosts: undefined, claims: [{ ...submission.claims[0], principal: { value, currency } }] };

    await makeClient().submitCase(one, { idempotencyKey: 'k' });

    const invoice = (seen[0].body as { contracts: { invoices: Record<string, unknown>[] }[] }).contracts[0].invoices[0];
    expect(invoice).toMatchObject({ remainingAmount: decimal, originalAmount: decimal, currency });
  });

  it('hands a business debtor over as a COMPANY with its name whole', async () => {
    const seen: Received[] = [];
    withToken();
    agency().post('/v1/claims').reply(recordingReply(seen, 202, { requestId: REQUEST_ID }));

    await makeClient().submitCase({ ...submission, debtor: { reference: 'cust_9', type: 'business', name: 'Globex GmbH', country: 'DE' } }, { idempotencyKey: 'k' });

    expect((seen[0].body as { customer: unknown }).customer).toEqual({
      customerNumber: 'cust_9',
      type: 'COMPANY',
      companyName: 'Globex GmbH',
      addresses: [{ type: 'BILLING', countryCode: 'DE' }],
    });
  });

  it('sends only the debtor fields the partner may receive', async () => {
    const seen: Received[] = [];
    withToken();
    agency().post('/v1/claims').reply(recordingReply(seen, 202, { requestId: REQUEST_ID }));

    await makeClient({ config: { debtorFields: ['country'] } }).submitCase(submission, { idempotencyKey: 'k' });

    const text = JSON.stringify(seen[0].body);
    expect((seen[0].body as { customer: unknown }).customer).toEqual({
      customerNumber: 'cust_123',
      type: 'PRIVATE',
      firstName: 'Jan',
      lastName: 'de Vries',
      addresses: [{ type: 'BILLING', countryCode: 'NL' }],
    });
    for (const leaked of ['jan@example.nl', '+31612345678', 'Dorpsstraat', 'Utrecht']) expect(text).not.toContain(leaked);
  });

  it('refuses, before any request, an amount Riverty does not allow and an invoice number over 40 characters', async () => {
    const client = makeClient();
    const zero = { ...submission, claims: [{ ...submission.claims[0], principal: { value: 0, currency: 'EUR' } }] };
    await expect(client.submitCase(zero, { idempotencyKey: 'k' })).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/refuses an amount of 0/) });
    const long = { ...submission, claims: [{ ...submission.claims[0], reference: 'c'.repeat(41) }] };
    await expect(client.submitCase(long, { idempotencyKey: 'k' })).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/40-character invoiceNumber/) });
  });

  it('takes a 409 naming the earlier hand-over as success (its answer was lost)', async () => {
    withToken();
    agency().post('/v1/claims').reply(409, { error: { code: 'duplicate_claim', message: 'exists' }, requestId: REQUEST_ID });
    await expect(makeClient().submitCase(submission, { idempotencyKey: 'k' })).resolves.toEqual({ partnerRef: REQUEST_ID, status: 'submitted' });
  });

  it('resolves the claim number from the requestId once, then remembers it', async () => {
    const seen: Received[] = [];
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).once().reply(recordingReply(seen, 200, processed()));
    agency().post(`/v1/claims/${CLAIM_NUMBER}/hold`).reply(recordingReply(seen, 202, {}));
    agency().post(`/v1/claims/${CLAIM_NUMBER}/resume`).reply(recordingReply(seen, 202, {}));

    const client = makeClient();
    await client.hold!(REQUEST_ID, { reason: 'customer called, paying next week' }, { idempotencyKey: 'hold-1' });
    await client.resume!(REQUEST_ID, { reason: 'no payment came', claimReference: 'clm_1' }, { idempotencyKey: 'resume-1' });

    expect(seen.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /v1/requests/${REQUEST_ID}`,
      `POST /v1/claims/${CLAIM_NUMBER}/hold`,
      `POST /v1/claims/${CLAIM_NUMBER}/resume`,
    ]);
    expect(seen[0].headers['idempotency-key']).toBeUndefined();
    expect(seen[1].body).toEqual({ comment: 'customer called, paying next week' });
    expect(seen[1].headers['idempotency-key']).toBe('hold-1');
    expect(seen[2].body).toEqual({ comment: 'no payment came', invoiceNumber: 'clm_1' });
    expect(seen[2].headers['idempotency-key']).toBe('resume-1');
  });

  it('retries later while Riverty has not registered the hand-over yet', async () => {
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(200, { requestId: REQUEST_ID, status: 'PENDING' });
    await expect(makeClient().withdraw(REQUEST_ID, { reason: 'x' }, { idempotencyKey: 'k' })).rejects.toMatchObject({ retryable: true, retryAfterMs: CLAIM_PENDING_RETRY_MS });
  });

  it('fails for good when Riverty rejected the hand-over', async () => {
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(200, { requestId: REQUEST_ID, status: 'REJECTED', rejectionReason: 'AMOUNT_TOO_LOW' });
    await expect(makeClient().withdraw(REQUEST_ID, { reason: 'x' }, { idempotencyKey: 'k' })).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/rejected by Riverty: AMOUNT_TOO_LOW/) });
  });

  it('reports a direct payment with paymentNumber (Riverty’s dedupe) and a decimal amount', async () => {
    const seen: Received[] = [];
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(200, processed());
    agency().post(`/v1/claims/${CLAIM_NUMBER}/payments`).reply(recordingReply(seen, 202, { status: 'CLOSED' }));

    await makeClient().reportPayment(REQUEST_ID, 'clm_1', { amount: { value: 2550, currency: 'EUR' }, paidAt: '2024-03-12T23:30:00.000Z', channel: 'stripe' }, { idempotencyKey: 'payment-evt_1' });

    expect(seen[0].headers['idempotency-key']).toBe('payment-evt_1');
    expect(seen[0].body).toEqual({
      invoiceNumber: 'clm_1',
      contractNumber: 'cse_01H',
      paymentNumber: 'payment-evt_1',
      date: '2024-03-12',
      description: 'paid to the merchant via stripe',
      amount: '25.50',
      currency: 'EUR',
      allocateTo: 'PRINCIPAL_CLAIM',
    });
  });

  it('recalls the whole claim, or one invoice (a credit note as a CREDIT_WAIVER)', async () => {
    const seen: Received[] = [];
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(200, processed());
    agency().post(`/v1/claims/${CLAIM_NUMBER}/recalls`).times(3).reply(recordingReply(seen, 202, {}));

    const client = makeClient();
    await client.withdraw(REQUEST_ID, { reason: 'withdrawn_by_merchant' }, { idempotencyKey: 'w1' });
    await client.withdraw(REQUEST_ID, { reason: 'credit_note', claimReference: 'clm_1' }, { idempotencyKey: 'w2' });
    await client.withdraw(REQUEST_ID, { reason: 'customer complained', claimReference: 'clm_2' }, { idempotencyKey: 'w3' });

    expect(seen.map((r) => r.body)).toEqual([
      { comment: 'withdrawn_by_merchant' },
      { comment: 'credit_note', invoices: [{ invoiceNumber: 'clm_1', contractNumber: 'cse_01H', type: 'CREDIT_WAIVER' }] },
      { comment: 'customer complained', invoices: [{ invoiceNumber: 'clm_2', contractNumber: 'cse_01H', type: 'RECALL' }] },
    ]);
    expect(seen.map((r) => r.headers['idempotency-key'])).toEqual(['w1', 'w2', 'w3']);
  });

  it('adds an invoice to an open claim, and takes "already there" as done', async () => {
    const seen: Received[] = [];
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(200, processed());
    agency().post(`/v1/claims/${CLAIM_NUMBER}/invoices`).reply(recordingReply(seen, 201, {}));
    agency().post(`/v1/claims/${CLAIM_NUMBER}/invoices`).reply(409, { error: { code: 'duplicate_claim', message: 'clm_2 is on the claim already' } });
    agency().post(`/v1/claims/${CLAIM_NUMBER}/invoices`).reply(409, { error: { code: 'case_closed', message: 'closed' } });

    const client = makeClient();
    await client.addClaim(REQUEST_ID, submission.claims[1], { idempotencyKey: 'claim-2' });
    await expect(client.addClaim(REQUEST_ID, submission.claims[1], { idempotencyKey: 'claim-2' })).resolves.toBeUndefined();
    await expect(client.addClaim(REQUEST_ID, submission.claims[1], { idempotencyKey: 'claim-2' })).rejects.toMatchObject({ retryable: false, status: 409 });

    expect(seen[0].body).toEqual({
      contractNumber: 'cse_01H',
      invoices: [{ invoiceNumber: 'clm_2', originalAmount: '1.00', remainingAmount: '1.00', currency: 'EUR', additionalProperties: [{ key: 'paymentFailure', value: 'stripe:expired_card (card_expired)' }] }],
    });
  });

  it('reads a claim in canonical words through the mapping', async () => {
    withToken();
    agency().get(`/v1/requests/${REQUEST_ID}`).reply(200, processed());
    agency()
      .get(`/v1/claims/${CLAIM_NUMBER}`)
      .reply(200, {
        claimNumber: CLAIM_NUMBER,
        contractNumber: 'cse_01H',
        status: 'IN_PROGRESS',
        invoices: [
          { invoiceNumber: 'clm_1', status: 'CLOSED', closingType: 'FULL_PAYMENT', collectedAmount: '49.99', currency: 'EUR' },
          { invoiceNumber: 'clm_2', status: 'PAYMENT_PLAN', collectedAmount: '0.40', currency: 'EUR' },
        ],
      });

    await expect(makeClient().getCase(REQUEST_ID)).resolves.toEqual({
      id: CLAIM_NUMBER,
      reference: 'cse_01H',
      status: 'in_collection',
      claims: [
        { reference: 'clm_1', status: 'paid', reason: 'paid_in_full', amountCollected: { value: 4999, currency: 'EUR' } },
        { reference: 'clm_2', status: 'arrangement', amountCollected: { value: 40, currency: 'EUR' } },
      ],
    });
  });

  it('refuses a mutating call without a usable Idempotency-Key before sending anything', async () => {
    await expect(makeClient().submitCase(submission, { idempotencyKey: '' })).rejects.toBeInstanceOf(DeliveryError);
    await expect(makeClient().hold!(REQUEST_ID, { reason: 'x' }, { idempotencyKey: 'bad key' })).rejects.toMatchObject({ retryable: false });
  });

  it('has no verifyPush: Riverty does not push', () => {
    expect(makeClient().verifyPush).toBeUndefined();
  });
});
