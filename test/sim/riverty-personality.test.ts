/**
 * The simulator's riverty personality as the hub's Riverty connector meets it: OAuth2 client
 * credentials with short-lived opaque tokens, claims in Riverty's shapes with decimal-string
 * amounts, the transaction feed by sortNumber, the seeded lifecycles in Riverty's words,
 * paymentNumber dedupe, recalls, hold/resume, withheld transactions — and never a push.
 */
import crypto from 'node:crypto';
import axios, { type AxiosResponse } from 'axios';
import { parseCli } from '../../sim/agency-sim/options';
import { createAgencySimulator, type AgencySimulator, type AgencySimulatorOptions } from '../../sim/agency-sim/simulator';

const CLIENT_ID = 'collection-hub';
const CLIENT_SECRET = 'riverty-sim-client-secret-0123';

const running: AgencySimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

async function startSim(opts: AgencySimulatorOptions = {}): Promise<{ sim: AgencySimulator; url: string }> {
  const sim = createAgencySimulator({ personality: 'riverty', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, stepMs: 0, ...opts });
  const { url } = await sim.start(0, '127.0.0.1');
  running.push(sim);
  return { sim, url };
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

async function tokenAt(url: string, fields: Record<string, string> = { grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, headers: Record<string, string> = {}): Promise<AxiosResponse> {
  return axios.post(`${url}/oauth/token`, form(fields), { validateStatus: () => true, headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers } });
}

async function api(url: string) {
  const token = (await tokenAt(url)).data.access_token as string;
  const opts = (extra: Record<string, string> = {}) => ({ validateStatus: () => true, headers: { Authorization: `Bearer ${token}`, ...extra } });
  return {
    token,
    get: (p: string) => axios.get(url + p, opts()),
    post: (p: string, body: unknown, key?: string) => axios.post(url + p, body, opts(key ? { 'Idempotency-Key': key } : {})),
  };
}

function invoice(invoiceNumber: string, remainingAmount: string, currency = 'EUR') {
  return { invoiceNumber, remainingAmount, originalAmount: remainingAmount, currency, dueDate: '2024-03-01' };
}

function claimBody(contractNumber: string, invoices = [invoice('clm_1', '10.00'), invoice('clm_2', '5.00')]) {
  return {
    customer: {
      customerNumber: 'cust_1',
      type: 'PRIVATE',
      firstName: 'Jo',
      lastName: 'Jansen',
      addresses: [{ type: 'BILLING', street: 'Dorpsstraat', houseNumber: '1', zipCode: '1234 AB', city: 'Utrecht', countryCode: 'NL' }],
      communicationChannels: [{ type: 'EMAIL', value: 'jo@example.nl' }],
    },
    contracts: [{ contractNumber, invoices }],
    additionalProperties: [{ key: 'creditorId', value: 'acme' }],
  };
}

type Tx = Record<string, unknown> & { sortNumber: number; type: string; invoiceNumber: string | null; status?: string; closingType?: string; collectedAmount?: string };
const brief = (t: Tx) => [t.invoiceNumber ?? 'claim', t.type, t.closingType ?? t.status, t.collectedAmount].filter((x) => x !== undefined).join(' ');

async function feed(url: string, query = 'fromSortNumber=0&limit=1000'): Promise<Tx[]> {
  const res = await (await api(url)).get(`/v1/transactions?${query}`);
  expect(res.status).toBe(200);
  return res.data.transactions as Tx[];
}

async function handOver(url: string, contract: string, body = claimBody(contract)) {
  const c = await api(url);
  const res = await c.post('/v1/claims', body);
  expect(res.status).toBe(202);
  const req = await c.get(`/v1/requests/${res.data.requestId}`);
  return { requestId: res.data.requestId as string, claimNumber: req.data.claimNumber as string, api: c };
}

const runToEnd = (sim: AgencySimulator) => {
  for (let i = 0; i < 20 && sim.step() > 0; i++);
};

describe('riverty personality: settings', () => {
  it('is chosen with --personality riverty or AGENCY_SIM_PERSONALITY, needs a client secret and no JWT secret', () => {
    const byFlag = parseCli(['--personality', 'riverty', '--client-secret', CLIENT_SECRET, '--token-ttl-seconds', '1.5'], {});
    expect(byFlag.help === false && byFlag.settings).toMatchObject({ personality: 'riverty', clientId: 'collection-hub', tokenTtlSeconds: 1.5 });
    const byEnv = parseCli([], { AGENCY_SIM_PERSONALITY: 'riverty', AGENCY_SIM_CLIENT_SECRET: CLIENT_SECRET, AGENCY_SIM_CLIENT_ID: 'acme-hub' });
    expect(byEnv.help === false && byEnv.settings).toMatchObject({ personality: 'riverty', clientId: 'acme-hub' });
    expect(() => parseCli(['--personality', 'riverty'], {})).toThrow(/--client-secret: the riverty personality needs/);
    expect(() => parseCli(['--personality', 'riverty', '--client-secret', CLIENT_SECRET, '--hub-url', 'http://127.0.0.1:3000'], {})).toThrow(/--hub-url: the riverty personality does not push/);
    expect(() => parseCli(['--personality', 'debitura'], {})).toThrow(/--personality: must be reference or riverty/);
  });
});

describe('riverty personality: OAuth2 tokens', () => {
  it('issues an opaque bearer token for the right client, in the form body or with HTTP Basic', async () => {
    const { sim, url } = await startSim({ tokenTtlSeconds: 90 });
    const body = await tokenAt(url);
    expect(body.status).toBe(200);
    expect(body.headers['cache-control']).toBe('no-store');
    expect(body.data).toEqual({ access_token: expect.stringMatching(/^[A-Za-z0-9_-]{20,}$/), token_type: 'Bearer', expires_in: 90 });
    const basic = await tokenAt(url, { grant_type: 'client_credentials' }, { Authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}` });
    expect(basic.status).toBe(200);
    expect(basic.data.access_token).not.toBe(body.data.access_token);
    expect(sim.tokens()).toEqual([
      expect.objectContaining({ number: 1, clientId: CLIENT_ID, revoked: false }),
      expect.objectContaining({ number: 2, clientId: CLIENT_ID, revoked: false }),
    ]);
    expect(JSON.stringify(sim.tokens())).not.toContain(body.data.access_token);
  });

  it('refuses a wrong secret (401 invalid_client) and another grant (400 unsupported_grant_type)', async () => {
    const { sim, url } = await startSim();
    const wrong = await tokenAt(url, { grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: 'nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.data).toMatchObject({ error: 'invalid_client' });
    const grant = await tokenAt(url, { grant_type: 'password', username: 'a', password: 'b' });
    expect(grant.status).toBe(400);
    expect(grant.data).toMatchObject({ error: 'unsupported_grant_type' });
    expect(sim.tokens()).toEqual([]);
    expect(sim.requests().map((r) => `${r.path} ${r.status} ${r.authError}`)).toEqual(['/oauth/token 401 invalid_client', '/oauth/token 400 unsupported_grant_type']);
  });

  it('answers 401 to a call without a token, with an unknown one, an expired one and a revoked one', async () => {
    let now = Date.parse('2024-03-10T12:00:00Z');
    const { sim, url } = await startSim({ tokenTtlSeconds: 1, now: () => new Date(now) });
    const noToken = await axios.get(`${url}/v1/transactions`, { validateStatus: () => true });
    expect(noToken.status).toBe(401);
    expect(noToken.data.error.code).toBe('missing_token');

    const c = await api(url);
    expect((await c.get('/v1/transactions')).status).toBe(200);
    now += 999;
    expect((await c.get('/v1/transactions')).status).toBe(200);
    now += 1;
    const expired = await c.get('/v1/transactions');
    expect(expired.status).toBe(401);
    expect(expired.data.error.code).toBe('token_expired');
    expect(expired.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);

    const fresh = await api(url);
    expect(sim.revokeTokens()).toBe(1); // the expired one was not live any more
    const revoked = await fresh.get('/v1/transactions');
    expect(revoked.status).toBe(401);
    expect(revoked.data.error.code).toBe('invalid_token');
    const forged = await axios.get(`${url}/v1/transactions`, { validateStatus: () => true, headers: { Authorization: 'Bearer not-one-of-ours' } });
    expect(forged.data.error.code).toBe('invalid_token');
  });
});

describe('riverty personality: claims', () => {
  it('takes a claim in Riverty’s shape (decimal strings) and answers 202 { requestId }; the claim number is confirmed in the feed', async () => {
    const { sim, url } = await startSim();
    const c = await api(url);
    const res = await c.post('/v1/claims', claimBody('cse_1'));
    expect(res.status).toBe(202);
    expect(res.data).toEqual({ requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });

    const req = await c.get(`/v1/requests/${res.data.requestId}`);
    expect(req.data).toEqual({ requestId: res.data.requestId, status: 'PROCESSED', claimNumber: expect.stringMatching(/^\d+$/), contractNumber: 'cse_1' });
    const [confirmation] = await feed(url);
    expect(confirmation).toMatchObject({ sortNumber: 0, type: 'CONFIRMATION', objectType: 'INVOICE', status: 'REGISTERED', requestId: res.data.requestId, claimNumber: req.data.claimNumber, contractNumber: 'cse_1', invoiceNumber: null });

    // The case book holds it in canonical form: minor units, contract = case reference, invoice = claim reference.
    expect(sim.case(res.data.requestId)).toMatchObject({
      reference: 'cse_1',
      debtor: { reference: 'cust_1', type: 'consumer', name: 'Jo Jansen' },
      claims: [expect.objectContaining({ reference: 'clm_1', principal: { value: 1000, currency: 'EUR' } }), expect.objectContaining({ reference: 'clm_2', principal: { value: 500, currency: 'EUR' } })],
    });
    expect(sim.case(req.data.claimNumber).id).toBe(sim.case(res.data.requestId).id);

    const view = await c.get(`/v1/claims/${req.data.claimNumber}`);
    expect(view.data).toMatchObject({
      claimNumber: req.data.claimNumber,
      contractNumber: 'cse_1',
      status: 'REGISTERED',
      collectedAmount: '0.00',
      invoices: [
        { invoiceNumber: 'clm_1', status: 'REGISTERED', originalAmount: '10.00', remainingAmount: '10.00', collectedAmount: '0.00', currency: 'EUR', onHold: false },
        expect.objectContaining({ invoiceNumber: 'clm_2', remainingAmount: '5.00' }),
      ],
    });
  });

  it.each([
    [{ ...claimBody('c'), contracts: [{ contractNumber: 'c', invoices: [{ ...invoice('i', '10.00'), remainingAmount: 10 }] }] }, 'contracts[0].invoices[0].remainingAmount', /decimal string/],
    [claimBody('c', [invoice('i', '0.00')]), 'contracts[0].invoices[0].remainingAmount', /0 amounts are not allowed/],
    [claimBody('c', [invoice('i', '1.005')]), 'contracts[0].invoices[0].remainingAmount', /more decimals than EUR allows/],
    [claimBody('c', [invoice('x'.repeat(41), '1.00')]), 'contracts[0].invoices[0].invoiceNumber', /at most 40/],
    [{ ...claimBody('c'), customer: { customerNumber: 'c', type: 'PRIVATE' } }, 'customer.lastName', /needs a lastName/],
  ])('refuses a bad claim with 400 naming the field (%#)', async (body, path, message) => {
    const { sim, url } = await startSim();
    const res = await (await api(url)).post('/v1/claims', body);
    expect(res.status).toBe(400);
    expect(res.data.error).toMatchObject({ code: 'invalid_body', path });
    expect(res.data.error.message).toMatch(message);
    expect(sim.cases()).toHaveLength(0);
  });

  it('answers a second hand-over of the same contract 409 with the first requestId', async () => {
    const { url } = await startSim();
    const first = await handOver(url, 'cse_dup');
    const again = await first.api.post('/v1/claims', claimBody('cse_dup'));
    expect(again.status).toBe(409);
    expect(again.data).toMatchObject({ error: { code: 'duplicate_claim' }, requestId: first.requestId });
  });

  it('honours an Idempotency-Key when sent (replay), without requiring one', async () => {
    const { sim, url } = await startSim();
    const c = await api(url);
    const a = await c.post('/v1/claims', claimBody('cse_k'), 'key-1');
    const b = await c.post('/v1/claims', claimBody('cse_k'), 'key-1');
    expect(b.status).toBe(202);
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(b.data).toEqual(a.data);
    expect(sim.cases()).toHaveLength(1);
  });

  it('counts a payment once per paymentNumber, then closes the invoice PAYMENT_BEFORE_HANDOVER', async () => {
    const { sim, url } = await startSim();
    const { claimNumber, api: c } = await handOver(url, 'cse_pay');
    const pay = (amount: string, paymentNumber: string) => c.post(`/v1/claims/${claimNumber}/payments`, { invoiceNumber: 'clm_2', paymentNumber, date: '2024-03-12', amount, currency: 'EUR', description: 'paid via stripe' });
    expect((await pay('2.50', 'p-1')).data).toMatchObject({ invoiceNumber: 'clm_2', status: 'REGISTERED', remainingAmount: '2.50' });
    expect((await pay('2.50', 'p-1')).data).toMatchObject({ remainingAmount: '2.50' }); // the same payment again: not counted
    expect((await pay('2.50', 'p-2')).data).toMatchObject({ status: 'CLOSED', remainingAmount: '0.00' });
    expect(sim.case(claimNumber).claims[1]).toMatchObject({ status: 'paid', reason: 'paid_to_merchant', amountPaidToMerchant: { value: 500, currency: 'EUR' } });
    expect((await feed(url)).map(brief)).toEqual(['claim CONFIRMATION REGISTERED', 'clm_2 CLOSING PAYMENT_BEFORE_HANDOVER']);
  });

  it('recalls one invoice as a credit waiver (COMPLETED_BY_CREDIT), then the rest (RECALLED_BY_CLIENT)', async () => {
    const { url } = await startSim();
    const { claimNumber, api: c } = await handOver(url, 'cse_recall');
    expect((await c.post(`/v1/claims/${claimNumber}/recalls`, { comment: 'credit_note', invoices: [{ invoiceNumber: 'clm_1', type: 'CREDIT_WAIVER' }] })).status).toBe(202);
    expect((await c.post(`/v1/claims/${claimNumber}/recalls`, { comment: 'customer moved abroad' })).status).toBe(202);
    const txs = await feed(url);
    // The claim as a whole: every invoice withdrawn, for different reasons — a recall.
    expect(txs.map(brief)).toEqual(['claim CONFIRMATION REGISTERED', 'clm_1 CLOSING COMPLETED_BY_CREDIT', 'clm_2 CLOSING RECALLED_BY_CLIENT', 'claim CLOSING RECALLED_BY_CLIENT 0.00']);
    expect(txs[2].comment).toBe("merchant's reason: customer moved abroad");
    expect((await c.post(`/v1/claims/${claimNumber}/recalls`, {})).status).toBe(409);
  });

  it('adds invoices to an open claim; a duplicate invoice number is 409 duplicate_claim', async () => {
    const { sim, url } = await startSim();
    const { claimNumber, api: c } = await handOver(url, 'cse_add');
    const added = await c.post(`/v1/claims/${claimNumber}/invoices`, { contractNumber: 'cse_add', invoices: [invoice('clm_3', '7.25')] });
    expect(added.status).toBe(201);
    expect(sim.case(claimNumber).claims[2]).toMatchObject({ reference: 'clm_3', principal: { value: 725, currency: 'EUR' } });
    const dup = await c.post(`/v1/claims/${claimNumber}/invoices`, { invoices: [invoice('clm_3', '7.25')] });
    expect(dup.status).toBe(409);
    expect(dup.data.error.code).toBe('duplicate_claim');
    expect((await c.post('/v1/claims/999999999/invoices', { invoices: [invoice('x', '1.00')] })).status).toBe(404);
  });
});

describe('riverty personality: lifecycle and feed', () => {
  it('plays the seeded scenarios of the reference personality, worded as Riverty transactions', async () => {
    const { sim, url } = await startSim({ scenarioMix: 'paid:1' });
    await handOver(url, 'cse_paid');
    runToEnd(sim);
    const txs = await feed(url);
    expect(txs.map(brief)).toEqual([
      'claim CONFIRMATION REGISTERED',
      'claim STATUS IN_PROGRESS',
      'clm_1 CLOSING FULL_PAYMENT 10.00',
      'clm_2 CLOSING FULL_PAYMENT 5.00',
      'claim CLOSING FULL_PAYMENT 15.00',
    ]);
    expect(txs.map((t) => t.sortNumber)).toEqual([0, 1, 2, 3, 4]);
    expect(new Set(txs.map((t) => t.transactionId)).size).toBe(5);
    // One transaction per update of the books, in the same order.
    expect(sim.updates().map((u) => u.occurredAt)).toEqual(txs.map((t) => t.createdAt));
  });

  it('words an arrangement as PAYMENT_PLAN, installments as AGENCY_PAYMENTS and the end as COMPLETED_BY_SETTLEMENT', async () => {
    const { sim, url } = await startSim({ scenarioMix: 'arrangement:1' });
    await handOver(url, 'cse_plan');
    runToEnd(sim);
    const txs = await feed(url);
    expect(txs.map(brief)).toEqual([
      'claim CONFIRMATION REGISTERED',
      'claim STATUS IN_PROGRESS',
      'claim STATUS PAYMENT_PLAN',
      'clm_1 ACCOUNTING_DOCUMENT PARTIALLY_PAID 5.00',
      'clm_1 CLOSING COMPLETED_BY_SETTLEMENT 10.00',
      'clm_2 CLOSING COMPLETED_BY_SETTLEMENT 5.00',
      'claim CLOSING COMPLETED_BY_SETTLEMENT 15.00',
    ]);
    expect(txs[2].paymentPlan).toEqual({ numberOfInstallments: 3, installmentAmount: '5.00', currency: 'EUR', firstDueDate: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    expect(txs[3]).toMatchObject({ documentType: 'AGENCY_PAYMENTS', currency: 'EUR' });
  });

  it('draws the same scenarios as the reference personality for the same seed', async () => {
    const riverty = await startSim({ seed: 7 });
    const reference = createAgencySimulator({ inSecret: 'hub-to-agency-shared-secret-0123456789', stepMs: 0, seed: 7 });
    running.push(reference);
    for (let i = 0; i < 8; i++) await handOver(riverty.url, `cse_${i}`);
    const { url: refUrl } = await reference.start(0, '127.0.0.1');
    const jwt = await import('jsonwebtoken');
    for (let i = 0; i < 8; i++) {
      const token = jwt.sign({}, 'hub-to-agency-shared-secret-0123456789', { algorithm: 'HS256', issuer: 'collection-hub', audience: 'refagency', expiresIn: 60 });
      await axios.post(`${refUrl}/v1/cases`, { reference: `cse_${i}`, creditor: { id: 'a', name: 'a' }, debtor: { reference: 'cust_1', type: 'consumer', name: 'Jo' }, claims: [{ reference: 'clm_1', principal: { value: 1000, currency: 'EUR' }, failure: { provider: 'stripe', code: 'x', reason: 'unknown' } }] }, { headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': crypto.randomUUID() } });
    }
    expect(riverty.sim.cases().map((c) => c.scenario)).toEqual(reference.cases().map((c) => c.scenario));
    expect(new Set(riverty.sim.cases().map((c) => c.scenario)).size).toBeGreaterThan(1);
  });

  it('pages by fromSortNumber and limit, by the documented from/to period, and by type', async () => {
    let now = Date.parse('2024-03-10T12:00:00Z');
    const { sim, url } = await startSim({ scenarioMix: 'paid:1', now: () => new Date((now += 1000)) });
    await handOver(url, 'cse_a');
    runToEnd(sim);
    const all = await feed(url);
    expect(all).toHaveLength(5);
    expect((await feed(url, 'fromSortNumber=2&limit=2')).map((t) => t.sortNumber)).toEqual([2, 3]);
    expect(await feed(url, 'fromSortNumber=5')).toEqual([]);
    const period = await feed(url, `from=${encodeURIComponent(String(all[1].createdAt))}&to=${encodeURIComponent(String(all[3].createdAt))}`);
    expect(period.map((t) => t.sortNumber)).toEqual([1, 2]);
    expect((await feed(url, 'type=closing')).map((t) => t.sortNumber)).toEqual([2, 3, 4]);
    const c = await api(url);
    for (const bad of ['fromSortNumber=-1', 'limit=0', 'limit=1001', 'from=yesterday', 'type=everything']) {
      const res = await c.get(`/v1/transactions?${bad}`);
      expect(res.status).toBe(400);
      expect(res.data.error.code).toBe('invalid_query');
    }
  });

  it('holds a claim (ON_HOLD, the lifecycle waits) and resumes it (IN_PROGRESS, it carries on)', async () => {
    const { sim, url } = await startSim({ scenarioMix: 'paid:1' });
    const { claimNumber, api: c } = await handOver(url, 'cse_hold');
    sim.step();
    const held = await c.post(`/v1/claims/${claimNumber}/hold`, { comment: 'customer called' }, 'hold-1');
    expect(held.status).toBe(202);
    expect(held.data).toMatchObject({ claimNumber, status: 'ON_HOLD', changed: true });
    expect(sim.step()).toBe(0);
    expect((await c.get(`/v1/claims/${claimNumber}`)).data.invoices.map((i: { onHold: boolean }) => i.onHold)).toEqual([true, true]);
    const resumed = await c.post(`/v1/claims/${claimNumber}/resume`, { comment: 'no payment came' });
    expect(resumed.data).toMatchObject({ status: 'IN_PROGRESS', changed: true });
    runToEnd(sim);
    const txs = await feed(url);
    expect(txs.map(brief)).toEqual([
      'claim CONFIRMATION REGISTERED',
      'claim STATUS IN_PROGRESS',
      'claim STATUS ON_HOLD',
      'claim STATUS IN_PROGRESS',
      'clm_1 CLOSING FULL_PAYMENT 10.00',
      'clm_2 CLOSING FULL_PAYMENT 5.00',
      'claim CLOSING FULL_PAYMENT 15.00',
    ]);
    expect(txs[2].comment).toBe('on hold: customer called');
  });

  it('holds one invoice only', async () => {
    const { sim, url } = await startSim({ scenarioMix: 'manual:1' });
    const { claimNumber, api: c } = await handOver(url, 'cse_hold1');
    await c.post(`/v1/claims/${claimNumber}/hold`, { comment: 'disputed by phone', invoiceNumber: 'clm_2' });
    expect(sim.case(claimNumber).claims.map((k) => k.status)).toEqual(['submitted', 'on_hold']);
    expect((await feed(url)).map(brief).at(-1)).toBe('clm_2 STATUS ON_HOLD 0.00');
  });

  it('withholds a transaction (numbered now, listed later), so a reader sees a hole and then an older transaction', async () => {
    const { sim, url } = await startSim({ scenarioMix: 'manual:1' });
    const { requestId } = await handOver(url, 'cse_late');
    const res = await axios.post(`${url}/_sim/cases/${requestId}/events`, { status: 'partially_paid', claimReference: 'clm_1', amountCollected: { value: 400, currency: 'EUR' }, withhold: true });
    expect(res.status).toBe(201);
    sim.emit(requestId, { status: 'paid', reason: 'paid_in_full', claimReference: 'clm_1' });

    expect((await feed(url)).map((t) => t.sortNumber)).toEqual([0, 2]);
    expect((await axios.get(`${url}/_sim/transactions`)).data.transactions.map((t: Tx) => `${t.sortNumber} ${t.withheld ?? false}`)).toEqual(['0 false', '1 true', '2 false']);
    expect((await axios.post(`${url}/_sim/transactions/release`)).data).toEqual({ released: 1 });
    const after = await feed(url);
    expect(after.map(brief)).toEqual(['claim CONFIRMATION REGISTERED', 'clm_1 ACCOUNTING_DOCUMENT PARTIALLY_PAID 4.00', 'clm_1 CLOSING FULL_PAYMENT 10.00']);
    expect(Date.parse(String(after[1].createdAt))).toBeLessThanOrEqual(Date.parse(String(after[2].createdAt)));
  });

  it('never pushes, and the reference routes are not there', async () => {
    const { sim, url } = await startSim({ scenarioMix: 'paid:1' });
    await handOver(url, 'cse_np');
    runToEnd(sim);
    await sim.pushesSettled();
    expect(sim.pushes()).toEqual([]);
    expect(sim.settings.hubUrl).toBeUndefined();
    expect((await (await api(url)).get('/v1/updates')).status).toBe(404);
  });

  it('keeps the reference personality’s control endpoints: cases by request id, scenario, faults', async () => {
    const { sim, url } = await startSim();
    const { requestId, claimNumber, api: c } = await handOver(url, 'cse_ctl');
    expect((await axios.post(`${url}/_sim/cases/${requestId}/scenario`, { scenario: 'disputed' })).data.scenario).toBe('disputed');
    expect((await axios.get(`${url}/_sim/cases/${claimNumber}`)).data.reference).toBe('cse_ctl');
    sim.setFaults({ errorRate: 1 });
    const refused = await c.post(`/v1/claims/${claimNumber}/hold`, {});
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect((await tokenAt(url)).status).toBe(503);
  });
});
