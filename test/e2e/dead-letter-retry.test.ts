/**
 * A call the agency refuses with a non-retryable 4xx goes to the dead letter with the agency's
 * answer kept, shows in the sync log as dead, and can be retried from the merchant API once the
 * cause is fixed; another merchant cannot see or retry it. Forged agency pushes are refused.
 */
import jwt from 'jsonwebtoken';
import { startStack, SECRETS, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { createAgencySimulator, type AgencySimulator } from '../../sim/agency-sim/simulator';

const now = () => Math.floor(Date.now() / 1000);

describe('dead letter and retry (embedded mode)', () => {
  let stack: Stack;
  let fixed: AgencySimulator | undefined;
  beforeAll(async () => {
    // The agency does not know the hub's secret: every call is answered 401 (not retryable).
    stack = await startStack({ mode: 'embedded', sim: { inSecret: 'an-agency-secret-the-hub-does-not-have-0123', stepMs: 60_000 } });
  }, 30_000);
  afterAll(async () => {
    await fixed?.stop();
    await stack?.stop();
  });

  it('dead-letters a 401, keeps the answer, and delivers on retry once fixed', async () => {
    const f = { invoice: 'in_dead1', customer: 'cus_dead1', amount: 7000, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const dead = await waitFor(async () => {
      const r = await stack.get('/v1/deliveries?status=dead');
      return r.body.data[0];
    }, 20_000, 100, 'a dead-lettered delivery');
    expect(dead).toMatchObject({ kind: 'agency.create_case', partner: 'refagency', status: 'dead', lastStatus: 401, attempts: 1 });
    expect(JSON.stringify(dead.lastResponse)).toMatch(/error/);
    const log = await stack.get(`/v1/sync-log?direction=out&outcome=dead`);
    expect(log.body.data[0]).toMatchObject({ party: 'refagency', operation: 'POST /v1/cases', httpStatus: 401, deliveryId: dead.id });

    // Another merchant can neither see nor retry it.
    expect((await stack.get('/v1/deliveries?status=dead', 'globex')).body.data).toEqual([]);
    const foreign = await fetch(`${stack.hubUrl}/v1/deliveries/${dead.id}/retry`, { method: 'POST', headers: { authorization: `Bearer ${stack.token('globex')}` } });
    expect(foreign.status).toBe(404);

    // Fix the cause: an agency that knows the secret, on the same address.
    const port = Number(new URL(stack.simUrl).port);
    await stack.sim.stop();
    fixed = createAgencySimulator({ partnerId: 'refagency', hubId: 'collection-hub', inSecret: SECRETS.hubToAgency, stepMs: 60_000 });
    await fixed.start(port, '127.0.0.1');

    const retry = await fetch(`${stack.hubUrl}/v1/deliveries/${dead.id}/retry`, { method: 'POST', headers: { authorization: `Bearer ${stack.token('acme')}` } });
    expect(retry.status).toBe(202);
    const again = await fetch(`${stack.hubUrl}/v1/deliveries/${dead.id}/retry`, { method: 'POST', headers: { authorization: `Bearer ${stack.token('acme')}` } });
    expect([202, 409]).toContain(again.status);
    await waitFor(async () => fixed!.cases().length === 1, 20_000, 100, 'the case at the fixed agency');
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the partner ref');
    expect(inv.case.partnerRef).toBe(fixed.cases()[0].id);

    // scope=all also lists the hub's own work for the merchant; the default lists deliveries only.
    const kinds = async (query: string, merchant = 'acme') => new Set(((await stack.get(`/v1/deliveries?${query}`, merchant)).body.data as { kind: string }[]).map((d) => d.kind));
    expect([...(await kinds('status=done&scope=all'))]).toEqual(expect.arrayContaining(['process_event', 'agency.create_case']));
    expect([...(await kinds('status=done'))]).not.toContain('process_event');
    expect([...(await kinds('status=done&scope=all', 'globex'))]).toEqual([]);
    expect((await stack.get('/v1/deliveries?scope=everything')).status).toBe(400);
  });

  it('refuses pushes with a forged, unsigned or wrongly addressed token, and stores nothing', async () => {
    const body = JSON.stringify({ events: [{ id: 'upd_forged', seq: 1, caseId: 'case_x', caseReference: 'cse_x', claimReference: null, status: 'paid', occurredAt: new Date().toISOString() }] });
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'refagency', aud: 'collection-hub', exp: now() + 60 })).toString('base64url')}.`;
    const tokens = {
      wrongSecret: jwt.sign({}, 'not-the-agency-secret-0123456789abcdef', { algorithm: 'HS256', issuer: 'refagency', audience: 'collection-hub', expiresIn: 60 }),
      wrongAudience: jwt.sign({}, SECRETS.agencyToHub, { algorithm: 'HS256', issuer: 'refagency', audience: 'someone-else', expiresIn: 60 }),
      algNone: none,
    };
    for (const [name, token] of Object.entries(tokens)) {
      const r = await fetch(`${stack.hubUrl}/v1/partners/refagency/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
      expect({ name, status: r.status }).toEqual({ name, status: 401 });
    }
    const missing = await fetch(`${stack.hubUrl}/v1/partners/refagency/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(missing.status).toBe(401);
    const unknown = await fetch(`${stack.hubUrl}/v1/partners/nobody/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unknown.status).toBe(404);
    const stored = await stack.hub.ctx.db.query(`SELECT 1 FROM partner_updates WHERE update_id = 'upd_forged'`);
    expect(stored.rows).toHaveLength(0);
  });
});
