/**
 * Fewer writes per event (issue 7): the agency confirming what an invoice already shows changes
 * no invoice row (only the timelines get its entry), and the exchange rows of an inbound event
 * are found by index, not by scanning the sync log (migration 007).
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
const ids = () => {
  n++;
  const tag = `${Date.now().toString(36)}${n}`;
  return { invoice: `in_pw${tag}`, customer: `cus_pw${tag}`, subscription: `sub_pw${tag}` };
};

describe.each<Mode>(['embedded', 'services'])('pipeline writes (%s mode)', (mode) => {
  let stack: Stack;
  let available = true;

  beforeAll(async () => {
    available = mode === 'embedded' || ((await postgresAvailable()) && (await redisAvailable()));
    if (!available) return;
    stack = await startStack({ mode, sim: { stepMs: 60_000 } });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const invoiceRow = async (ref: string) =>
    (await stack.hub.ctx.db.query<{ status: string; updated_at: Date; amount_collected: string | number }>(
      `SELECT status, updated_at, amount_collected FROM invoices WHERE provider_ref = $1`,
      [ref],
    )).rows[0];

  maybe("the agency's `submitted` for a submitted invoice is on the timelines but rewrites no invoice row; a real change still does", async () => {
    const f = { ...ids(), amount: 5100, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the case at the agency');
    // The simulator pushes its own `submitted` when it takes the case: let that one apply first.
    await waitFor(async () => (await stack.hub.ctx.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM partner_updates WHERE status = 'received'`)).rows[0].n === 0, 20_000, 100, 'earlier updates to apply');
    const before = await invoiceRow(f.invoice);
    expect(before.status).toBe('submitted');

    const pushed = stack.sim.emit(inv.case.partnerRef, { status: 'submitted', claimReference: inv.claim.id });
    const applied = async (updateId: string) =>
      (await stack.hub.ctx.db.query<{ status: string }>(`SELECT status FROM partner_updates WHERE update_id = $1`, [updateId])).rows[0]?.status === 'applied';
    await waitFor(() => applied(pushed.id), 20_000, 100, 'the submitted update to apply');

    const after = await invoiceRow(f.invoice);
    expect(new Date(after.updated_at).getTime()).toBe(new Date(before.updated_at).getTime());
    const history = (await stack.hub.ctx.db.query<{ entity: string; source: string }>(
      `SELECT entity, source FROM status_history WHERE entity_id IN ($1, $2) AND status = 'submitted' AND detail->>'updateId' = $3 ORDER BY id`,
      [inv.id, inv.claim.id, pushed.id],
    )).rows;
    expect(history.map((h) => h.entity)).toEqual(['claim', 'invoice']);
    // The claim's own ordering state did move on (a later, older update must still lose).
    const claim = (await stack.hub.ctx.db.query<{ last_update_seq: string | number | null }>(`SELECT last_update_seq FROM claims WHERE id = $1`, [inv.claim.id])).rows[0];
    expect(Number(claim.last_update_seq)).toBe(pushed.seq);

    // A change the invoice shows (money collected) is written as before.
    const paid = stack.sim.emit(inv.case.partnerRef, { status: 'paid', reason: 'paid_in_full', claimReference: inv.claim.id, amountCollected: { value: 5100, currency: 'EUR' } });
    // The simulator follows the claim's `paid` with the case's own `paid` (a newer seq). In
    // services mode the two may be applied concurrently and the case's may land first; it then
    // settles the claim itself and the claim's own update is stale. Either way the invoice ends
    // paid with the amount collected, which is what this asserts.
    await waitFor(async () => {
      const u = (await stack.hub.ctx.db.query<{ status: string }>(`SELECT status FROM partner_updates WHERE update_id = $1`, [paid.id])).rows[0];
      return !!u && u.status !== 'received' && (await invoiceRow(f.invoice)).status === 'paid';
    }, 20_000, 100, 'the paid update (or the case-level one that supersedes it) to apply');
    const paidRow = await invoiceRow(f.invoice);
    expect(paidRow.status).toBe('paid');
    expect(Number(paidRow.amount_collected)).toBe(5100);
    expect(new Date(paidRow.updated_at).getTime()).toBeGreaterThan(new Date(before.updated_at).getTime());
  });

  maybe('an inbound event’s exchange rows are found through the exchanges_inbound_event index', async () => {
    const plan = await stack.hub.ctx.db.tx(async (sql) => {
      // Tiny tables would be scanned anyway: ask whether the index can serve the lookup at all.
      await sql.query('SET LOCAL enable_seqscan = off');
      const r = await sql.query<Record<string, string>>(`EXPLAIN UPDATE exchanges SET summary = summary WHERE inbound_event_id = 42`);
      return r.rows.map((x) => Object.values(x)[0]).join('\n');
    });
    expect(plan).toContain('exchanges_inbound_event');
  });
});
