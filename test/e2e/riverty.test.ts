/**
 * The second agency end to end, in both run modes: the hub's Riverty connector against the
 * simulator's riverty personality over real HTTP — OAuth2 client credentials with 1-second tokens,
 * claims with decimal-string amounts, status back only by pulling the transaction feed (no push),
 * a token that expires or is revoked mid-run, an older transaction that arrives late and must not
 * win, and hold/resume sent through the connector.
 */
import { PARTNER_IDS, SECRETS, startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
const ids = () => {
  n++;
  const tag = `${Date.now().toString(36)}${n}`;
  return { invoice: `in_rv${tag}`, customer: `cus_rv${tag}` };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

describe.each<Mode>(['embedded', 'services'])('Stripe → Riverty-shaped agency → back by pull (%s mode)', (mode) => {
  let stack: Stack;
  let available = true;
  const partner = PARTNER_IDS.riverty;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    stack = await startStack({ mode, personality: 'riverty', pullEverySeconds: 1, sim: { stepMs: 60_000, tokenTtlSeconds: 1, scenarioMix: 'manual:1' } });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 45_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  /** A final Stripe failure for a new customer; resolves with the invoice once its case is at the agency. */
  async function handedOver(amount: number, extra: Record<string, unknown> = {}) {
    const f = { ...ids(), amount, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: 'Jan de Vries', customerEmail: 'jan@example.nl', country: 'NL', number: 'ACME-0042', ...extra };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the claim at the agency');
    return { f, inv };
  }

  async function invoiceWhen(ref: string, test: (body: any) => boolean, what: string) {
    return waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ref}`);
      return r.status === 200 && test(r.body) ? r.body : null;
    }, 20_000, 100, what);
  }

  maybe('a final failure becomes a Riverty claim; arrangement, then paid, come back by pull at invoice and customer level', async () => {
    const { f, inv } = await handedOver(4999);
    expect(inv.case).toMatchObject({ partner, partnerRef: expect.stringMatching(/^[0-9a-f-]{36}$/) });

    // At the agency: one claim for the case, the invoice in minor units after the decimal-string round trip.
    const atAgency = stack.sim.case(inv.case.partnerRef);
    expect(atAgency).toMatchObject({ reference: inv.case.id, debtor: { name: 'Jan de Vries' } });
    expect(atAgency.claims).toEqual([expect.objectContaining({ reference: inv.claim.id, number: 'ACME-0042', principal: { value: 4999, currency: 'EUR' } })]);
    const calls = stack.sim.requests();
    expect(calls.filter((r) => r.method === 'POST' && r.path === '/v1/claims' && r.status === 202)).toHaveLength(1);
    expect(calls.some((r) => r.path === '/oauth/token' && r.status === 200)).toBe(true);

    stack.sim.emit(inv.case.partnerRef, {
      status: 'arrangement',
      claimReference: inv.claim.id,
      arrangement: { installments: 3, amount: { value: 1667, currency: 'EUR' }, firstDueAt: '2030-05-01T00:00:00.000Z' },
      note: 'plan agreed by phone',
    });
    const arranged = await invoiceWhen(f.invoice, (b) => b.status === 'arrangement', 'the pulled arrangement');
    expect(arranged.arrangement).toEqual({ installments: 3, amount: { value: 1667, currency: 'EUR' }, firstDueAt: '2030-05-01T00:00:00.000Z' });

    stack.sim.emit(inv.case.partnerRef, { status: 'paid', reason: 'paid_via_arrangement', claimReference: inv.claim.id, amountCollected: { value: 4999, currency: 'EUR' } });
    const paid = await invoiceWhen(f.invoice, (b) => b.status === 'paid', 'the pulled paid update');
    expect(paid).toMatchObject({ status: 'paid', resolution: 'paid_via_arrangement', resolvedBy: partner, amountCollected: { value: 4999, currency: 'EUR' } });
    expect(paid.timeline.map((t: { status: string }) => t.status)).toEqual(expect.arrayContaining(['payment_failed', 'submitted', 'arrangement', 'paid']));

    const cust = await stack.get(`/v1/customers/${f.customer}`);
    expect(cust.status).toBe(200);
    expect(cust.body.amounts).toEqual([expect.objectContaining({ currency: 'EUR', collected: { value: 4999, currency: 'EUR' }, open: { value: 0, currency: 'EUR' } })]);
    expect(cust.body.lastOutcome).toMatchObject({ status: 'paid', resolution: 'paid_via_arrangement', by: partner });
    expect(cust.body.cases).toEqual([expect.objectContaining({ partner, status: 'paid' })]);

    // Pull only: nothing was pushed, and every stored update came by pull.
    expect(stack.sim.pushes()).toEqual([]);
    const via = await stack.hub.ctx.db.query<{ via: string }>(`SELECT DISTINCT via FROM partner_updates WHERE partner_id = $1`, [partner]);
    expect(via.rows.map((r) => r.via)).toEqual(['pull']);
    const push = await fetch(`${stack.hubUrl}/v1/partners/${partner}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events: [] }) });
    expect(push.status).toBe(404);
    expect(JSON.stringify(await push.json())).toContain('push_not_supported');

    // The sync log shows the token exchange beside the hand-over, never the client secret.
    const log = await stack.get(`/v1/sync-log?case=${inv.case.id}&direction=out`);
    const text = JSON.stringify(log.body);
    expect(log.body.data.map((x: { operation: string }) => x.operation)).toEqual(expect.arrayContaining(['POST /oauth/token', 'POST /v1/claims']));
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(SECRETS.rivertyClient);
    const leaked = await stack.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM exchanges WHERE request::text LIKE $1 OR response::text LIKE $1`, [`%${SECRETS.rivertyClient}%`]);
    expect(leaked.rows[0].n).toBe(0);
  });

  maybe('a token that expires mid-run is replaced: a second claim after expiry still succeeds, with a new token', async () => {
    const first = await handedOver(2500);
    const tokensBefore = stack.sim.tokens();
    expect(tokensBefore.length).toBeGreaterThanOrEqual(1);
    const lastBefore = tokensBefore[tokensBefore.length - 1];
    // Every token issued so far is past its 1-second lifetime now.
    await sleep(Math.max(0, Date.parse(lastBefore.expiresAt) - Date.now()) + 200);

    const second = await handedOver(2600);
    expect(second.inv.case.partnerRef).not.toBe(first.inv.case.partnerRef);
    const after = stack.sim.tokens();
    expect(after.length).toBeGreaterThan(tokensBefore.length);
    const claimCalls = stack.sim.requests().filter((r) => r.method === 'POST' && r.path === '/v1/claims');
    expect(claimCalls.at(-1)).toMatchObject({ status: 202 });
    // The claim went out with a token issued after the first ones had expired.
    expect(Date.parse(after[after.length - 1].issuedAt)).toBeGreaterThan(Date.parse(lastBefore.issuedAt));
    const dead = await stack.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE status = 'dead'`);
    expect(dead.rows[0].n).toBe(0);
  });

  maybe('a token revoked mid-run gets 401; the connector fetches a new one and the call goes through', async () => {
    const { inv } = await handedOver(1500);
    const client = stack.hub.ctx.partners.get(partner)!.client;
    // Leave the connector holding a token fetched just now (well inside its 1-second life)…
    stack.sim.revokeTokens();
    await client.getCase(inv.case.partnerRef);
    const issued = stack.sim.tokens().length;
    const mark = stack.sim.requests().length;
    // …and revoke it: the agency refuses it although the connector still trusts it.
    stack.sim.revokeTokens();
    await expect(client.getCase(inv.case.partnerRef)).resolves.toMatchObject({ reference: inv.case.id, claims: [expect.objectContaining({ reference: inv.claim.id })] });

    const since = stack.sim.requests().slice(mark);
    const refusedAt = since.findIndex((r) => r.status === 401 && r.authError === 'invalid_token');
    expect(refusedAt).toBeGreaterThanOrEqual(0);
    expect(since.slice(refusedAt).some((r) => r.path === '/oauth/token' && r.status === 200)).toBe(true);
    expect(stack.sim.tokens().length).toBeGreaterThan(issued);

    // And the next hand-over goes through as usual.
    const next = await handedOver(1600);
    expect(stack.sim.case(next.inv.case.partnerRef).reference).toBe(next.inv.case.id);
  });

  maybe('an older transaction delivered late (lower sortNumber, older occurredAt) does not undo paid', async () => {
    const { f, inv } = await handedOver(3000);
    const ref = inv.case.partnerRef;
    // Numbered first, listed only later: a transaction Riverty committed late.
    const older = stack.sim.emit(ref, { status: 'partially_paid', claimReference: inv.claim.id, amountCollected: { value: 1000, currency: 'EUR' } }, { withhold: true });
    await sleep(5);
    const newer = stack.sim.emit(ref, { status: 'paid', reason: 'paid_in_full', claimReference: inv.claim.id, amountCollected: { value: 3000, currency: 'EUR' } });
    expect(Date.parse(older.occurredAt)).toBeLessThan(Date.parse(newer.occurredAt));
    const olderTx = stack.sim.transactions().find((t) => t.createdAt === older.occurredAt && t.invoiceNumber === inv.claim.id)!;
    const newerTx = stack.sim.transactions().find((t) => t.createdAt === newer.occurredAt && t.invoiceNumber === inv.claim.id)!;
    expect(olderTx.sortNumber).toBeLessThan(newerTx.sortNumber);

    await invoiceWhen(f.invoice, (b) => b.status === 'paid', 'the newer paid update');
    // The hub's cursor waits before the hole the withheld transaction leaves.
    const held = await stack.hub.ctx.db.query<{ cursor: string }>(`SELECT cursor FROM partner_cursors WHERE partner_id = $1`, [partner]);
    expect(held.rows[0].cursor).toMatch(new RegExp(`^${olderTx.sortNumber - 1}@\\d+$`));

    expect(stack.sim.releaseTransactions()).toBe(1);
    const stale = await waitFor(async () => {
      const r = await stack.hub.ctx.db.query<{ status: string }>(`SELECT status FROM partner_updates WHERE partner_id = $1 AND update_id = $2`, [partner, olderTx.transactionId]);
      return r.rows[0] && r.rows[0].status !== 'received' ? r.rows[0].status : null;
    }, 20_000, 100, 'the late transaction to be pulled and judged');
    expect(stale).toBe('stale');

    const after = await stack.get(`/v1/invoices/${f.invoice}`);
    expect(after.body).toMatchObject({ status: 'paid', resolution: 'paid_in_full', amountCollected: { value: 3000, currency: 'EUR' } });
    const moved = await waitFor(async () => {
      const r = await stack.hub.ctx.db.query<{ cursor: string }>(`SELECT cursor FROM partner_cursors WHERE partner_id = $1`, [partner]);
      return /^\d+$/.test(r.rows[0].cursor) && Number(r.rows[0].cursor) >= newerTx.sortNumber ? r.rows[0].cursor : null;
    }, 10_000, 100, 'the cursor to move past the filled hole');
    expect(Number(moved)).toBeGreaterThanOrEqual(newerTx.sortNumber);
  });

  maybe('hold and resume sent through the connector come back as on_hold, then in_collection', async () => {
    const { f, inv } = await handedOver(2200);
    const client = stack.hub.ctx.partners.get(partner)!.client;
    await client.hold!(inv.case.partnerRef, { reason: 'customer called, paying next week' }, { idempotencyKey: `hold-${inv.case.id}` });
    const held = await invoiceWhen(f.invoice, (b) => b.status === 'on_hold', 'on_hold by pull');
    expect(held.case.status).toBe('on_hold');
    expect(stack.sim.case(inv.case.partnerRef).claims[0].status).toBe('on_hold');

    await client.resume!(inv.case.partnerRef, { reason: 'no payment came' }, { idempotencyKey: `resume-${inv.case.id}` });
    await invoiceWhen(f.invoice, (b) => b.status === 'in_collection', 'in_collection by pull');
  });
});
