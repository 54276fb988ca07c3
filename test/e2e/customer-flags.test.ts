/**
 * A debtor's payment-behaviour flags end to end (issue 17), in both run modes: a Stripe failure
 * goes to the agency simulator; the merchant's endpoint (a receiver on loopback) hears
 * `customer.flags_changed` once the debtor is in collection; the agency agrees an arrangement, then
 * reports the case back in collection (the plan broken) — and the webhook fires exactly once for
 * that change, signed per Standard Webhooks, with the flag and its why. GET /v1/customers/:ref shows
 * the same profile. Erasing the customer afterwards removes the stored flags, and the API shows no
 * profile any more.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { verify } from '../../src/notify/standard-webhooks';
import { startReceiver, type Receiver } from '../notify/receiver';
import { WEBHOOK_SECRET } from '../notify/support';

const now = () => Math.floor(Date.now() / 1000);

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

interface FlagsEvent {
  id: string;
  type: string;
  data: { debtorId: string; flags: { name: string; on: boolean; why: string; facts: Record<string, unknown> }[]; previous: string[]; turnedOn: string[]; turnedOff: string[]; customers: { ref: string }[] };
}

describe.each<Mode>(['embedded', 'services'])('customer flags (%s mode)', (mode) => {
  let stack: Stack;
  let receiver: Receiver;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    receiver = await startReceiver();
    // stepMs 0: the simulator moves only when the test steps it.
    stack = await startStack({ mode, sim: { stepMs: 0 }, acmeExtra: `    webhooks: { url: "${receiver.url}", secret: "${WEBHOOK_SECRET}" }` });
    stack.sim.setScenario(null, 'arrangement');
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    await receiver?.stop();
  });

  /** The flags events delivered (2xx) for this customer, one per webhook-id, verified. */
  const flagEvents = (customerRef: string): FlagsEvent[] => {
    const seen = new Map<string, FlagsEvent>();
    for (const d of receiver.deliveries) {
      if (d.status !== 200) continue;
      const e = verify(WEBHOOK_SECRET, d.headers, d.body) as FlagsEvent;
      if (e.type !== 'customer.flags_changed' || !e.data.customers.some((c) => c.ref === customerRef)) continue;
      expect(e.id).toBe(d.headers['webhook-id']);
      seen.set(e.id, e);
    }
    return [...seen.values()];
  };

  it('the flags change as the agency reports a broken arrangement, the webhook fires once, and the customer view shows the flag and why', async () => {
    if (!available) return;
    const t = `${mode[0]}${Date.now().toString(36)}`;
    const f = { invoice: `in_fl${t}`, customer: `cus_fl${t}`, amount: 6000, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 30_000, 100, 'the case at the agency');
    const partnerRef = inv.case.partnerRef as string;

    // In collection: the first change of the flag set.
    const first = await waitFor(async () => {
      const e = flagEvents(f.customer);
      return e.length >= 1 ? e : null;
    }, 30_000, 100, 'customer.flags_changed: in collection');
    expect(first[0].data).toMatchObject({ previous: [], turnedOn: ['in_collection_now'], turnedOff: [] });
    expect(first[0].data.flags.map((x) => x.name)).toEqual(['in_collection_now']);

    // The agency works the case and agrees a plan of instalments…
    const status = async () => (await stack.get(`/v1/invoices/${f.invoice}`)).body.status as string;
    expect(stack.sim.step(partnerRef)).toBeGreaterThan(0);
    await waitFor(async () => (await status()) === 'in_collection', 15_000, 50, 'in collection');
    expect(stack.sim.step(partnerRef)).toBeGreaterThan(0);
    await waitFor(async () => (await status()) === 'arrangement', 15_000, 50, 'the arrangement');
    // …which the debtor breaks: the agency reports the case back in collection.
    stack.sim.emit(partnerRef, { status: 'in_collection', note: 'arrangement broken: first instalment missed' });
    await waitFor(async () => (await status()) === 'in_collection', 15_000, 50, 'back in collection');

    const broken = await waitFor(async () => {
      const e = flagEvents(f.customer).filter((x) => x.data.turnedOn.includes('broken_arrangement_12m'));
      return e.length ? e : null;
    }, 30_000, 100, 'customer.flags_changed: broken arrangement');
    expect(broken).toHaveLength(1);
    const event = broken[0];
    expect(event.data).toMatchObject({ previous: ['in_collection_now'], turnedOn: ['broken_arrangement_12m'], turnedOff: [] });
    const flag = event.data.flags.find((x) => x.name === 'broken_arrangement_12m')!;
    expect(flag.on).toBe(true);
    expect(flag.why).toMatch(new RegExp(`^Broke 1 payment arrangement in the last 12 months \\(threshold 1\\): case ${inv.case.id} with refagency, agreed \\d{4}-\\d\\d-\\d\\d, back to in collection on \\d{4}-\\d\\d-\\d\\d\\.$`));
    expect(flag.facts).toMatchObject({ count: 1, threshold: 1, months: 12, arrangements: [{ caseId: inv.case.id, partnerId: 'refagency', status: 'in_collection' }] });

    // Fires once: more reconcile passes (the hub scans every second) and a progress update that
    // changes no flag owe nothing more.
    stack.sim.emit(partnerRef, { status: 'in_collection', note: 'reminder sent to the debtor' });
    await new Promise((r) => setTimeout(r, 2500));
    expect(flagEvents(f.customer)).toHaveLength(2);
    const owed = (await stack.hub.ctx.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM outbox WHERE kind = 'merchant.webhook' AND payload->'event'->>'type' = 'customer.flags_changed' AND payload->>'debtorId' = $1`,
      [event.data.debtorId],
    )).rows[0].n;
    expect(Number(owed)).toBe(2);

    // The customer view: the profile with the flag and its why, from this merchant's data.
    const view = (await stack.get(`/v1/customers/${f.customer}`)).body;
    expect(view.profile).toMatchObject({
      debtorId: event.data.debtorId,
      current: { inCollection: true, partnerIds: ['refagency'], openAmount: { value: 6000, currency: 'EUR' } },
      windows: { '3m': { failures: { count: 1, byReason: { insufficient_funds: 1 } }, handedOver: { count: 1 }, arrangements: { agreed: 1, kept: 0, broken: 1 } } },
    });
    expect(view.profile.flags.map((x: { name: string }) => x.name)).toEqual(['in_collection_now', 'broken_arrangement_12m']);
    expect(view.profile.flags[1]).toEqual(flag);
    expect(view.profile.recheckAt).toBeUndefined();
    // Another merchant asking for the same customer gets nothing (tenant rule).
    expect((await stack.get(`/v1/customers/${f.customer}`, 'globex')).status).toBe(404);
    const stored = (await stack.hub.ctx.db.query<{ flags: string[] }>(`SELECT flags FROM debtor_profiles WHERE debtor_id = $1`, [event.data.debtorId])).rows[0];
    expect(stored.flags).toEqual(['broken_arrangement_12m', 'in_collection_now']);
  }, 120_000);

  it('erasure removes the stored flags, and the customer shows no profile afterwards', async () => {
    if (!available) return;
    const t = `${mode[0]}e${Date.now().toString(36)}`;
    const f = { invoice: `in_fe${t}`, customer: `cus_fe${t}`, amount: 3000, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 30_000, 100, 'the case at the agency');
    const debtorId = (await stack.get(`/v1/customers/${f.customer}`)).body.profile.debtorId as string;
    await waitFor(async () => (await stack.hub.ctx.db.query(`SELECT 1 FROM debtor_profiles WHERE debtor_id = $1`, [debtorId])).rows.length > 0, 30_000, 100, 'the stored flags');
    // The agency collects: nothing is pursued any more, so the data may be erased (no legal hold).
    stack.sim.emit(inv.case.partnerRef, { status: 'paid', reason: 'paid_in_full', amountCollected: { value: 3000, currency: 'EUR' } });
    await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`)).body.status === 'paid', 15_000, 50, 'paid');
    const erased = await fetch(`${stack.hubUrl}/v1/customers/${f.customer}/erase`, { method: 'POST', headers: { authorization: `Bearer ${stack.token('acme')}` } });
    expect(erased.status).toBe(200);
    expect((await stack.hub.ctx.db.query(`SELECT 1 FROM debtor_profiles WHERE debtor_id = $1`, [debtorId])).rows).toEqual([]);
    const view = (await stack.get(`/v1/customers/${f.customer}`)).body;
    expect(view.profile).toBeNull();
    // The erasure's own history row (and anything after) makes no new profile row.
    await new Promise((r) => setTimeout(r, 2000));
    expect((await stack.hub.ctx.db.query(`SELECT 1 FROM debtor_profiles WHERE debtor_id = $1`, [debtorId])).rows).toEqual([]);
  }, 90_000);
});
