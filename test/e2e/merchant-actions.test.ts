/**
 * The merchant's withdraw / hold / resume of an invoice over HTTP, end to end (embedded mode):
 * the request is checked (token, tenant, reason, state), the invoice and claim change at once
 * with the reason on their timelines, the agency is told through the outbox, and both the
 * merchant's request and the agency call are in the sync log.
 *
 * Until src/http/app.ts mounts the router, the first suite serves it beside the hub on its own
 * port with the hub's context (the same objects the app would use); withdraw goes all the way to
 * the agency simulator already, since `agency.withdraw` is an existing outbox kind.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { merchantActionsRouter } from '../../src/http/merchant-actions';
import { errorBody, errorHandler } from '../../src/http/errors';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
const tag = () => `${Date.now().toString(36)}${++n}`;

async function serveActions(stack: Stack): Promise<{ url: string; stop(): Promise<void> }> {
  const app = express();
  app.use(merchantActionsRouter(stack.hub.ctx));
  app.use((req, res) => void res.status(404).json(errorBody('not_found', `no route ${req.method} ${req.path}`)));
  app.use(errorHandler(stack.hub.ctx.logger));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handedOver(stack: Stack) {
  const t = tag();
  const f = { invoice: `in_act${t}`, customer: `cus_act${t}`, amount: 5900, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
  expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
  const inv = await waitFor(async () => {
    const r = await stack.get(`/v1/invoices/${f.invoice}`);
    return r.body?.case?.partnerRef ? r.body : null;
  }, 20_000, 50, 'the case at the agency');
  await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0]?.status === 'in_collection', 10_000, 50, 'the claim in collection at the agency');
  return { ref: f.invoice as string, inv };
}

function client(base: () => string, stack: () => Stack) {
  return async (ref: string, action: string, body: unknown, merchant: string | null = 'acme', contentType = 'application/json') => {
    const headers: Record<string, string> = { 'content-type': contentType };
    if (merchant) headers.authorization = `Bearer ${stack().token(merchant)}`;
    const r = await fetch(`${base()}/v1/invoices/${encodeURIComponent(ref)}/${action}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: r.status, body: (await r.json().catch(() => null)) as any };
  };
}

describe('merchant actions on an invoice (embedded mode, router served beside the hub)', () => {
  let stack: Stack;
  let actions: { url: string; stop(): Promise<void> };
  const post = client(() => actions.url, () => stack);

  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 50 } });
    // The agency takes cases into collection and then waits (no payments of its own).
    stack.sim.setScenario(null, 'manual');
    actions = await serveActions(stack);
  }, 30_000);
  afterAll(async () => {
    await actions?.stop();
    await stack?.stop();
  });

  it('refuses what it must: no token 401, another merchant 404, unknown invoice 404, bad reason 400, not with a partner 409', async () => {
    const { ref } = await handedOver(stack);
    expect((await post(ref, 'withdraw', { reason: 'x' }, null)).status).toBe(401);
    expect((await post(ref, 'withdraw', { reason: 'x' }, 'globex')).status).toBe(404);
    expect((await post('in_nobody', 'hold', { reason: 'x' })).status).toBe(404);
    for (const bad of [{}, { reason: '' }, { reason: '   ' }, { reason: 42 }, { reason: 'x'.repeat(501) }, { reason: 'ok', extra: 1 }, { reason: 'bell\u0007' }]) {
      const r = await post(ref, 'withdraw', bad);
      expect({ bad, status: r.status, code: r.body?.error?.code }).toEqual({ bad, status: 400, code: 'bad_request' });
    }
    expect((await post(ref, 'withdraw', 'reason=x', 'acme', 'application/x-www-form-urlencoded')).status).toBe(400);
    expect((await post(ref, 'withdraw', '{not json')).status).toBe(400);
    expect((await post(ref, 'resume', { reason: 'not held' })).body.error.code).toBe('not_on_hold');

    // Failed, but Stripe will retry: not with a partner.
    const t = tag();
    const open = { invoice: `in_open${t}`, customer: `cus_open${t}`, amount: 1000, created: now() - 10, nextPaymentAttempt: now() + 86_400, failureCode: 'insufficient_funds' };
    await stack.sendStripe('acme', stripeEvents.paymentFailed(open));
    await waitFor(async () => (await stack.get(`/v1/invoices/${open.invoice}`)).status === 200, 10_000, 50, 'the open invoice');
    const r = await post(open.invoice, 'hold', { reason: 'x' });
    expect(r).toEqual({ status: 409, body: { error: { code: 'not_in_collection', message: expect.stringMatching(/is open/) } } });
  });

  it('withdraw: the invoice is withdrawn at once, the agency withdraws the claim, and the log shows the request and the call', async () => {
    const { ref, inv } = await handedOver(stack);
    const r = await post(ref, 'withdraw', { reason: 'settled with the customer by phone' });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ action: 'withdraw', reason: 'settled with the customer by phone', status: 'withdrawn', invoice: { ref, status: 'withdrawn', resolution: 'withdrawn_by_merchant', resolvedBy: 'merchant', claim: { status: 'withdrawn' } } });

    const atAgency = await waitFor(async () => {
      const claim = stack.sim.case(inv.case.partnerRef).claims[0];
      return claim.status === 'withdrawn' ? claim : null;
    }, 15_000, 50, 'the claim withdrawn at the agency');
    expect(atAgency.reason).toBe('withdrawn_by_merchant');
    const log = await waitFor(async () => {
      const l = (await stack.get(`/v1/sync-log?invoice=${ref}&limit=50`)).body.data as { direction: string; party: string; operation: string; outcome: string; summary: string }[];
      return l.some((x) => x.operation === `POST /v1/cases/${inv.case.partnerRef}/withdraw` && x.outcome === 'ok') ? l : null;
    }, 15_000, 50, 'the withdrawal in the sync log');
    expect(log).toContainEqual(expect.objectContaining({ direction: 'in', party: 'merchant', operation: 'POST /v1/invoices/:ref/withdraw', outcome: 'ok', summary: 'withdraw requested: settled with the customer by phone' }));
    expect(log).toContainEqual(expect.objectContaining({ direction: 'out', party: 'refagency', operation: `POST /v1/cases/${inv.case.partnerRef}/withdraw`, outcome: 'ok' }));
    const timeline = (await stack.get(`/v1/invoices/${ref}`)).body.timeline as { entity: string; status: string; source: string; reason?: string }[];
    expect(timeline).toContainEqual(expect.objectContaining({ entity: 'invoice', status: 'withdrawn', source: 'merchant', reason: 'settled with the customer by phone' }));
    expect(timeline).toContainEqual(expect.objectContaining({ entity: 'claim', status: 'withdrawal_sent' }));
    // Nothing left to withdraw.
    expect((await post(ref, 'withdraw', { reason: 'again' })).status).toBe(409);
  });

  it('hold then resume: the invoice is on hold, then back where it was, each request owing the agency a call', async () => {
    const { ref, inv } = await handedOver(stack);
    const held = await post(ref, 'hold', { reason: 'customer disputes the amount; checking' });
    expect(held.status).toBe(202);
    // The case follows its only claim (src/ledger/case-status.ts).
    expect(held.body).toMatchObject({ status: 'on_hold', invoice: { status: 'on_hold', claim: { status: 'on_hold' }, case: { status: 'on_hold' } } });
    expect((await post(ref, 'hold', { reason: 'again' })).body.error.code).toBe('already_on_hold');
    const resumed = await post(ref, 'resume', { reason: 'amount confirmed' });
    expect(resumed.status).toBe(202);
    expect(resumed.body).toMatchObject({ status: 'in_collection', invoice: { status: 'in_collection', claim: { status: 'in_collection' }, case: { status: 'in_collection' } } });
    const rows = (await stack.hub.ctx.db.query(`SELECT kind, lane, idempotency_key, payload FROM outbox WHERE invoice_id = $1 AND kind IN ('agency.hold', 'agency.resume') ORDER BY id`, [inv.id])).rows;
    expect(rows).toEqual([
      { kind: 'agency.hold', lane: 'partner.refagency', idempotency_key: `hold-${inv.claim.id}-1`, payload: { caseId: inv.case.id, claimId: inv.claim.id, reason: 'customer disputes the amount; checking' } },
      // (Numbered by the holds on the claim so far: the agency's own on_hold report, once wired, counts too.)
      { kind: 'agency.resume', lane: 'partner.refagency', idempotency_key: expect.stringMatching(new RegExp(`^resume-${inv.claim.id}-[12]$`)), payload: { caseId: inv.case.id, claimId: inv.claim.id, reason: 'amount confirmed' } },
    ]);
    const timeline = (await stack.get(`/v1/invoices/${ref}`)).body.timeline as { entity: string; status: string; source: string; reason?: string }[];
    const mine = timeline.filter((t) => t.source === 'merchant' && t.entity === 'invoice').map((t) => [t.status, t.reason]);
    expect(mine).toEqual([['on_hold', 'customer disputes the amount; checking'], ['in_collection', 'amount confirmed']]);
  });
});

describe('merchant actions through the hub itself, to the agency (embedded mode)', () => {
  let stack: Stack;
  const post = client(() => stack.hubUrl, () => stack);

  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 50 } });
    stack.sim.setScenario(null, 'manual');
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const logHas = (ref: string, operation: string) =>
    waitFor(async () => {
      const l = (await stack.get(`/v1/sync-log?invoice=${ref}&limit=50`)).body.data as { operation: string; outcome: string }[];
      return l.some((x) => x.operation === operation && x.outcome === 'ok');
    }, 15_000, 50, `${operation} in the sync log`);

  it('hold and resume reach the agency: its claim goes on hold and back into collection; the log shows both calls', async () => {
    const { ref, inv } = await handedOver(stack);
    expect((await post(ref, 'hold', { reason: 'customer disputes the amount' })).status).toBe(202);
    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].status === 'on_hold', 15_000, 50, 'the claim on hold at the agency');
    await logHas(ref, `POST /v1/cases/${inv.case.partnerRef}/hold`);
    await waitFor(async () => (await stack.get(`/v1/invoices/${ref}`)).body.status === 'on_hold', 15_000, 50, 'the invoice on hold');

    expect((await post(ref, 'resume', { reason: 'amount confirmed' })).status).toBe(202);
    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].status === 'in_collection', 15_000, 50, 'the claim back in collection at the agency');
    await logHas(ref, `POST /v1/cases/${inv.case.partnerRef}/resume`);
    await waitFor(async () => (await stack.get(`/v1/invoices/${ref}`)).body.status === 'in_collection', 15_000, 50, 'the invoice back in collection');
    const dead = (await stack.get('/v1/deliveries?status=dead')).body.data as { kind: string }[];
    expect(dead.filter((d) => d.kind === 'agency.hold' || d.kind === 'agency.resume')).toEqual([]);
  });

  it('withdraw reaches the agency through the hub', async () => {
    const { ref, inv } = await handedOver(stack);
    expect((await post(ref, 'withdraw', { reason: 'credit note issued' })).status).toBe(202);
    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].status === 'withdrawn', 15_000, 50, 'the claim withdrawn at the agency');
    await logHas(ref, `POST /v1/cases/${inv.case.partnerRef}/withdraw`);
  });
});
