/**
 * End to end over real HTTP, in both run modes: GoCardless webhook batches signed as GoCardless
 * signs them (hex HMAC-SHA256 of the body, `Webhook-Signature`) → the hub fetches the payment,
 * mandate and customer from the local GoCardless fake (`apiBase` in acme's gocardless block) → a
 * case at the agency simulator; duplicates, chargebacks, mandate cancellations and forged
 * signatures (498) on the way.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { createFakeGoCardless, type FakeGoCardless } from '../../sim/psp/fake-gocardless';
import { gocardlessEvents, gocardlessId, gocardlessResources, signGoCardless, webhookBody } from '../../sim/psp/gocardless-events';
import { testSecret } from '../support/secrets';

/** Drawn per test file: the hub refuses short, placeholder and published secrets (issue 13). */
const SECRET = testSecret('gocardlessWebhook');
const TOKEN = 'sandbox_e2e_acme_token_0123456789';

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

const ago = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString();
/** The day GoCardless collects (yesterday); the claim's dueAt. */
const chargeDate = ago(86400).slice(0, 10);

describe.each<Mode>(['embedded', 'services'])('GoCardless → agency (%s mode)', (mode) => {
  let fake: FakeGoCardless;
  let stack: Stack;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    fake = createFakeGoCardless({ accessToken: TOKEN });
    const { url } = await fake.start();
    stack = await startStack({
      mode,
      sim: { stepMs: 60_000 },
      // At the indentation of `stripe:` under acme's providers (test/support/stack.ts).
      acmeProviders: `      gocardless:\n        webhookSecret: ${SECRET}\n        accessToken: ${TOKEN}\n        apiBase: ${url}`,
    });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await fake?.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  /** A customer with a SEPA mandate and one payment at the fake; returns the ids. */
  function seed(amount: number, extra: { companyName?: string } = {}) {
    const customer = gocardlessId('CU');
    const mandate = gocardlessId('MD');
    const payment = gocardlessId('PM');
    fake.customers.set(
      customer,
      gocardlessResources.customer({ id: customer, givenName: 'Jan', familyName: 'Jansen', email: 'jan@example.nl', countryCode: 'NL', language: 'nl', city: 'Amsterdam', ...extra }),
    );
    fake.mandates.set(mandate, gocardlessResources.mandate({ id: mandate, customer }));
    fake.payments.set(payment, gocardlessResources.payment({ id: payment, mandate, amount, currency: 'EUR', description: 'Gold plan', chargeDate, createdAt: ago(5 * 86400) }));
    return { customer, mandate, payment };
  }

  async function send(body: unknown, opts: { secret?: string; signature?: string | null } = {}): Promise<Response> {
    const signed = signGoCardless(body, opts.secret ?? SECRET);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'gocardless-webhook-service/1.2' };
    if (opts.signature !== null) headers['webhook-signature'] = opts.signature ?? signed.signature;
    return fetch(`${stack.hubUrl}/v1/webhooks/gocardless/acme`, { method: 'POST', headers, body: signed.body });
  }

  async function invoiceWithCase(ref: string) {
    return waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ref}`);
      return r.status === 200 && r.body.case?.partnerRef ? r.body : null;
    }, 20_000, 100, `a case for ${ref} at the agency`);
  }

  maybe('a final failed SEPA payment becomes a case at the agency with the fetched amount and the reason', async () => {
    const ids = seed(4900);
    const res = await send(webhookBody([gocardlessEvents.paymentFailed({ payment: ids.payment, createdAt: ago(60) })]));
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');

    const inv = await invoiceWithCase(ids.payment);
    expect(inv.status).toBe('submitted');
    expect(inv.failure).toMatchObject({ code: 'insufficient_funds', reason: 'insufficient_funds', final: true });
    const simCases = stack.sim.cases().filter((c) => c.reference === inv.case.id);
    expect(simCases).toHaveLength(1);
    // The debtor reference is the hub's own customer id; the fields beyond name and type depend on
    // what the partner may receive (data minimisation, src/delivery/agency-delivery.ts).
    const customer = (await stack.get(`/v1/customers/${ids.customer}`)).body;
    expect(customer).toMatchObject({ ref: ids.customer, provider: 'gocardless', name: 'Jan Jansen', email: 'jan@example.nl', country: 'NL', type: 'consumer' });
    expect(simCases[0].debtor).toMatchObject({ reference: customer.id, name: 'Jan Jansen', type: 'consumer' });
    expect(simCases[0].claims).toHaveLength(1);
    expect(simCases[0].claims[0].principal).toEqual({ value: 4900, currency: 'EUR' });
    // What the agency was sent for the claim: the raw code and the canonical reason.
    const out = (await stack.get('/v1/sync-log?direction=out&limit=100')).body.data as { operation: string; caseId: string; request: any }[];
    const submitted = out.filter((x) => x.operation === 'POST /v1/cases' && x.caseId === inv.case.id);
    expect(submitted).toHaveLength(1);
    expect(submitted[0].request.claims).toEqual([
      expect.objectContaining({
        principal: { value: 4900, currency: 'EUR' },
        description: 'Gold plan',
        dueAt: `${chargeDate}T00:00:00.000Z`,
        failure: { provider: 'gocardless', code: 'insufficient_funds', reason: 'insufficient_funds' },
      }),
    ]);
    // The hub fetched what the event only linked to, with GoCardless's version header.
    const paths = fake.requests.filter((r) => r.path.endsWith(ids.payment) || r.path.endsWith(ids.mandate) || r.path.endsWith(ids.customer));
    expect(paths.map((r) => [r.path, r.gocardlessVersion, r.authorized])).toEqual([
      [`/payments/${ids.payment}`, '2015-07-06', true],
      [`/mandates/${ids.mandate}`, '2015-07-06', true],
      [`/customers/${ids.customer}`, '2015-07-06', true],
    ]);
  });

  maybe('a failure GoCardless will retry (will_attempt_retry: true) is not handed over', async () => {
    const ids = seed(3000);
    expect((await send(webhookBody([gocardlessEvents.paymentFailed({ payment: ids.payment, willAttemptRetry: true, createdAt: ago(30) })]))).status).toBe(204);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ids.payment}`);
      return r.status === 200 && r.body.failure ? r.body : null;
    }, 15_000, 100, 'the invoice');
    expect(inv).toMatchObject({ status: 'open', case: null, failure: { code: 'insufficient_funds', final: false } });
  });

  maybe('a batch delivered twice opens no second case', async () => {
    const ids = seed(2500);
    const body = webhookBody([
      // Out of order on purpose, as GoCardless allows; the failure is the later event.
      gocardlessEvents.paymentFailed({ payment: ids.payment, createdAt: ago(40), cause: 'bank_account_closed', reasonCode: 'AC04' }),
      gocardlessEvents.other('payments', 'submitted', { payment: ids.payment }, { createdAt: ago(3 * 86400) }),
    ]);
    const [first, second] = [await send(body), await send(body)];
    expect([first.status, second.status]).toEqual([204, 204]);
    const inv = await invoiceWithCase(ids.payment);
    expect(inv.failure).toMatchObject({ code: 'bank_account_closed', reason: 'account_closed' });
    // A third delivery after the case is open changes nothing either.
    expect((await send(body)).status).toBe(204);
    await new Promise((r) => setTimeout(r, 500));
    const cases = (await stack.get(`/v1/cases?customer=${ids.customer}`)).body.data;
    expect(cases).toHaveLength(1);
    const hubCustomerId = (await stack.get(`/v1/customers/${ids.customer}`)).body.id;
    expect(stack.sim.cases().filter((c) => c.debtor.reference === hubCustomerId)).toHaveLength(1);
    const log = (await stack.get(`/v1/sync-log?direction=in&limit=50`)).body.data as { outcome: string; request: { id?: string } | null }[];
    // Each event of the batch: stored once, then recorded as a duplicate by the second and third delivery.
    for (const event of body.events) {
      const outcomes = log.filter((x) => x.request?.id === event.id).map((x) => x.outcome);
      expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(2);
      expect(outcomes).toHaveLength(3);
    }
  });

  maybe('a chargeback on another payment does not open a case: the invoice is disputed', async () => {
    const ids = seed(1800);
    fake.payments.get(ids.payment)!.status = 'paid_out';
    expect((await send(webhookBody([gocardlessEvents.paymentPaidOut({ payment: ids.payment, createdAt: ago(600) })]))).status).toBe(204);
    await waitFor(async () => (await stack.get(`/v1/invoices/${ids.payment}`)).body?.status === 'settled', 15_000, 100, 'the settled invoice');

    fake.payments.get(ids.payment)!.status = 'charged_back';
    expect((await send(webhookBody([gocardlessEvents.paymentChargedBack({ payment: ids.payment, createdAt: ago(60) })]))).status).toBe(204);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ids.payment}`);
      return r.body?.status === 'disputed' ? r.body : null;
    }, 15_000, 100, 'the disputed invoice');
    expect(inv.case).toBeNull();
    await new Promise((r) => setTimeout(r, 300));
    const hubCustomerId = (await stack.get(`/v1/customers/${ids.customer}`)).body.id;
    expect(hubCustomerId).toEqual(expect.any(String));
    expect(stack.sim.cases().filter((c) => c.debtor.reference === hubCustomerId)).toEqual([]);
    expect((await stack.get(`/v1/customers/${ids.customer}`)).body.lastFailure).toMatchObject({ code: 'refund_requested', reason: 'disputed' });
  });

  maybe("a mandate cancellation shows mandateStatus 'revoked' on the customer", async () => {
    const ids = seed(1000, { companyName: 'Jansen Bouw BV' });
    fake.mandates.get(ids.mandate)!.status = 'cancelled';
    expect((await send(webhookBody([gocardlessEvents.mandateCancelled({ mandate: ids.mandate, createdAt: ago(20) })]))).status).toBe(204);
    const cust = await waitFor(async () => {
      const r = await stack.get(`/v1/customers/${ids.customer}`);
      return r.status === 200 && r.body.mandateStatus ? r.body : null;
    }, 15_000, 100, 'the customer');
    expect(cust).toMatchObject({ ref: ids.customer, provider: 'gocardless', name: 'Jansen Bouw BV', type: 'business', country: 'NL', mandateStatus: 'revoked' });
  });

  maybe('a bad signature is refused with 498 and nothing is stored or fetched', async () => {
    const ids = seed(4000);
    const body = webhookBody([gocardlessEvents.paymentFailed({ payment: ids.payment, createdAt: ago(10) })]);
    const wrongSecret = await send(body, { secret: 'gc_whsec_wrong' });
    const missing = await send(body, { signature: null });
    expect([wrongSecret.status, missing.status]).toEqual([498, 498]);
    expect(((await wrongSecret.json()) as { error: { message: string } }).error.message).toMatch(/signature/i);
    await new Promise((r) => setTimeout(r, 300));
    expect((await stack.get(`/v1/invoices/${ids.payment}`)).status).toBe(404);
    expect((await stack.get(`/v1/customers/${ids.customer}`)).status).toBe(404);
    expect(fake.requests.filter((r) => r.path === `/payments/${ids.payment}`)).toEqual([]);
    const log = (await stack.get('/v1/sync-log?direction=in&limit=20')).body.data as { party: string; outcome: string; httpStatus: number }[];
    expect(log.filter((x) => x.party === 'gocardless' && x.outcome === 'rejected').map((x) => x.httpStatus)).toEqual(expect.arrayContaining([498, 498]));
  });
});
