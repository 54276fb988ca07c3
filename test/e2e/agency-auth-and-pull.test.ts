/**
 * The hub ⇄ agency protocol end to end (contract §5): calls signed RS256 and ES256 with the
 * hub's own key, which the agency fetches from /.well-known/jwks.json; and a pull-only agency
 * whose updates reach the hub through the scheduled GET /v1/updates.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';

const now = () => Math.floor(Date.now() / 1000);

async function failInvoice(stack: Stack, tag: string) {
  const f = { invoice: `in_auth${tag}`, customer: `cus_auth${tag}`, amount: 5000, created: now() - 60, nextPaymentAttempt: null, failureCode: 'AM04', method: 'sepa_debit' as const };
  expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
  return waitFor(async () => {
    const r = await stack.get(`/v1/invoices/${f.invoice}`);
    return r.body?.case?.partnerRef ? r.body : null;
  }, 20_000, 100, 'the case at the agency');
}

describe.each(['RS256', 'ES256'] as const)('hub → agency calls signed %s with the hub key (JWKS)', (alg) => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', outboundAlg: alg, sim: { stepMs: 60_000 } });
  }, 30_000);
  afterAll(() => stack?.stop());

  it('serves its public key and the agency accepts the signed case', async () => {
    const jwks = (await (await fetch(`${stack.hubUrl}/.well-known/jwks.json`)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ alg, use: 'sig', kid: expect.any(String) });
    expect(jwks.keys[0].d).toBeUndefined(); // never the private part
    const inv = await failInvoice(stack, alg);
    expect(inv.failure).toMatchObject({ code: 'AM04', reason: 'insufficient_funds' });
    expect(stack.sim.requests().some((r) => r.path === '/v1/cases' && r.status === 201)).toBe(true);
    expect(stack.sim.requests().every((r) => !r.authError)).toBe(true);
  });
});

describe('a pull-only agency', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', push: false, pullEverySeconds: 1, sim: { stepMs: 60_000 } });
  }, 30_000);
  afterAll(() => stack?.stop());

  it('brings the agency status back through the scheduled pull, applied once', async () => {
    const inv = await failInvoice(stack, 'pull');
    stack.sim.emit(inv.case.partnerRef, { status: 'arrangement', claimReference: inv.claim.id, arrangement: { installments: 3, amount: { value: 1667, currency: 'EUR' }, firstDueAt: new Date(Date.now() + 7 * 86400_000).toISOString() } });
    const arranged = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${inv.id}`);
      return r.body?.status === 'arrangement' ? r.body : null;
    }, 20_000, 100, 'the pulled arrangement');
    expect(arranged.arrangement).toMatchObject({ installments: 3, amount: { value: 1667, currency: 'EUR' } });
    expect(stack.sim.pushes()).toHaveLength(0);
    // Pulling again brings nothing new: the cursor moved and each update is applied once.
    await stack.hub.pullNow('refagency');
    const applied = await stack.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM partner_updates WHERE status = 'applied'`);
    const received = await stack.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM partner_updates`);
    expect(received.rows[0].n).toBe(stack.sim.updates().length);
    expect(applied.rows[0].n).toBeGreaterThan(0);
  });
});
