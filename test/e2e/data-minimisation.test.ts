/**
 * Data minimisation (GDPR art. 5(1)(c)) at the HTTP level (embedded mode): a partner that
 * declares `debtorFields: [country]` receives the debtor's reference, type, name and country —
 * the protocol's required fields and the one it asked for — and nothing else: no e-mail, phone or
 * address, in any call. The hub's calls to the agency simulator go through a recording proxy, so
 * the test sees the exact bytes the agency got.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { newId } from '../../src/domain/ids';

interface Recorded {
  method: string;
  path: string;
  body: string;
}

/** Forwards every request to `target` unchanged and keeps a copy of what was sent. */
async function recordingProxy(target: string): Promise<{ url: string; recorded: Recorded[]; stop(): Promise<void> }> {
  const recorded: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      recorded.push({ method: req.method ?? '', path: req.url ?? '', body: body.toString('utf8') });
      const out = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    recorded,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const now = () => Math.floor(Date.now() / 1000);
const PERSONAL = {
  email: 'marieke.devries@example.nl',
  phone: '+31 6 1234 5678',
  address: { line1: 'Keizersgracht 123', city: 'Amsterdam', postalCode: '1015 CJ', country: 'NL' },
};

describe('data minimisation: a partner gets only the debtor fields it declared (embedded mode)', () => {
  let stack: Stack;
  let proxy: Awaited<ReturnType<typeof recordingProxy>> | undefined;

  beforeAll(async () => {
    stack = await startStack({
      mode: 'embedded',
      sim: { stepMs: 60_000 },
      partnerExtra: '    debtorFields: [country]',
      agencyUrl: async (simUrl) => {
        proxy = await recordingProxy(simUrl);
        return proxy.url;
      },
    });
    stack.sim.pause();
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
    await proxy?.stop();
  });

  /** A customer the hub knows everything about (phone and street address too), then a final failure → a case. */
  async function handOver(name: string | null) {
    const tag = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    const customer = `cus_min${tag}`;
    await stack.hub.ctx.db.query(
      `INSERT INTO customers (id, merchant_id, provider, provider_ref, name, email, phone, address, country, locale, type)
       VALUES ($1,'acme','stripe',$2,$3,$4,$5,$6,'NL','nl-NL','consumer')`,
      [newId('cust'), customer, name, PERSONAL.email, PERSONAL.phone, JSON.stringify(PERSONAL.address)],
    );
    const f = { invoice: `in_min${tag}`, customer, amount: 4200, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: name ?? undefined, customerEmail: PERSONAL.email, country: 'NL' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 50, 'the case at the agency');
    const sent = proxy!.recorded.filter((r) => r.method === 'POST' && r.path === '/v1/cases' && JSON.parse(r.body).reference === inv.case.id);
    expect(sent.length).toBeGreaterThanOrEqual(1);
    return { inv, customer, sent: sent.map((r) => JSON.parse(r.body)) };
  }

  const nothingPersonalIn = (text: string) => {
    expect(text).not.toContain(PERSONAL.email);
    expect(text).not.toContain('example.nl');
    expect(text).not.toContain(PERSONAL.phone);
    expect(text).not.toContain('Keizersgracht');
    expect(text).not.toContain('1015 CJ');
    expect(text).not.toContain('nl-NL');
  };

  it('sends reference, type, name and country — and no e-mail, phone, address or locale', async () => {
    const { sent, customer } = await handOver('Marieke de Vries');
    for (const submission of sent) {
      expect(Object.keys(submission.debtor).sort()).toEqual(['country', 'name', 'reference', 'type']);
      expect(submission.debtor).toMatchObject({ name: 'Marieke de Vries', country: 'NL', type: 'consumer' });
    }
    // Not in the case submission, nor in any other call the agency got.
    for (const r of proxy!.recorded) nothingPersonalIn(r.body);
    // The hub itself still has them (it is the merchant's data, kept for the merchant).
    const kept = (await stack.hub.ctx.db.query(`SELECT email, phone FROM customers WHERE provider_ref = $1`, [customer])).rows[0];
    expect(kept).toEqual({ email: PERSONAL.email, phone: PERSONAL.phone });
    // And the agency stored no more than it was sent.
    const atAgency = stack.sim.cases().find((c) => c.reference === sent[0].reference)!;
    expect(atAgency.debtor).toEqual({ reference: sent[0].debtor.reference, type: 'consumer', name: 'Marieke de Vries' });
  });

  it('a customer without a name is not named by their e-mail address', async () => {
    const { sent } = await handOver(null);
    for (const submission of sent) {
      expect(Object.keys(submission.debtor).sort()).toEqual(['country', 'name', 'reference', 'type']);
      expect(typeof submission.debtor.name).toBe('string');
      expect(submission.debtor.name.length).toBeGreaterThan(0);
    }
    for (const r of proxy!.recorded) nothingPersonalIn(r.body);
  });
});

/**
 * A partner that declares no `debtorFields` gets the documented minimal set (src/privacy/minimise.ts):
 * reference, type and name, plus the postal address, country and locale — never the e-mail or phone,
 * which a partner must ask for by name. Free text that leaves for the agency (the debtor's name and
 * address, the invoice's description, the merchant's hold and withdraw reasons) carries no card
 * number or IBAN.
 */
describe('data minimisation: the default set, and free text scrubbed (embedded mode)', () => {
  let stack: Stack;
  let proxy: Awaited<ReturnType<typeof recordingProxy>> | undefined;
  const CARD = '4242 4242 4242 4242';
  const IBAN = 'NL91ABNA0417164300';

  beforeAll(async () => {
    stack = await startStack({
      mode: 'embedded',
      sim: { stepMs: 60_000 },
      agencyUrl: async (simUrl) => {
        proxy = await recordingProxy(simUrl);
        return proxy.url;
      },
    });
    stack.sim.pause();
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
    await proxy?.stop();
  });

  const act = (ref: string, action: string, reason: string) =>
    fetch(`${stack.hubUrl}/v1/invoices/${ref}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${stack.token('acme')}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason }) });

  it('sends reference, type, name, address, country and locale without e-mail or phone, and no card number or IBAN in any free text', async () => {
    const tag = Date.now().toString(36);
    const customer = `cus_def${tag}`;
    await stack.hub.ctx.db.query(
      `INSERT INTO customers (id, merchant_id, provider, provider_ref, name, email, phone, address, country, locale, type)
       VALUES ($1,'acme','stripe',$2,$3,$4,$5,$6,'NL','nl-NL','consumer')`,
      [newId('cust'), customer, `Marieke de Vries ${CARD}`, PERSONAL.email, PERSONAL.phone, JSON.stringify({ ...PERSONAL.address, line2: `IBAN ${IBAN}` })],
    );
    const f = { invoice: `in_def${tag}`, customer, amount: 4200, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', description: `Plan (paid from ${IBAN})` };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 50, 'the case at the agency');
    const submission = JSON.parse(proxy!.recorded.find((r) => r.method === 'POST' && r.path === '/v1/cases' && JSON.parse(r.body).reference === inv.case.id)!.body);
    expect(Object.keys(submission.debtor).sort()).toEqual(['address', 'country', 'locale', 'name', 'reference', 'type']);
    expect(submission.debtor.address.city).toBe('Amsterdam');
    expect(submission.debtor.name).toContain('Marieke de Vries');

    expect((await act(f.invoice, 'hold', `customer paid from ${IBAN}, checking`)).status).toBe(202);
    expect((await act(f.invoice, 'withdraw', `refunded to card ${CARD}`)).status).toBe(202);
    await waitFor(async () => proxy!.recorded.some((r) => /withdraw/.test(r.path)), 20_000, 50, 'the withdrawal at the agency');
    await waitFor(async () => proxy!.recorded.some((r) => /hold/.test(r.path)), 20_000, 50, 'the hold at the agency');
    for (const r of proxy!.recorded) {
      expect(r.body).not.toContain(PERSONAL.email);
      expect(r.body).not.toContain(PERSONAL.phone);
      expect(r.body).not.toContain(IBAN);
      expect(r.body).not.toContain(CARD);
      expect(r.body).not.toContain('4242424242424242');
    }
  });
});
