/**
 * The hand-over check runs inside process_event's transaction when the invoice it marks is
 * already due (src/pipeline/process-event.ts): no handover_check row, no second commit, no wait
 * in the hub's lane behind newer events. A check due later keeps its own row. Either way one
 * customer's invoices stack into one case.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
const ids = () => {
  n++;
  const tag = `${Date.now().toString(36)}${n}`;
  return { invoice: `in_ih${tag}`, customer: `cus_ih${tag}`, subscription: `sub_ih${tag}` };
};

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

interface OutboxView {
  kind: string;
  status: string;
  next_attempt_at: Date;
  created_at: Date;
}

describe.each<Mode>(['embedded', 'services'])('hand-over check inline (%s mode)', (mode) => {
  let available = true;
  const stacks: Stack[] = [];

  beforeAll(async () => {
    available = await modeAvailable(mode);
  });

  afterAll(async () => {
    for (const s of stacks) await s.stop();
  }, 60_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 45_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  async function stack(handoverAfterDays: number): Promise<Stack> {
    const s = await startStack({ mode, handoverAfterDays, sim: { stepMs: 60_000 } });
    s.sim.pause();
    stacks.push(s);
    return s;
  }

  const outboxOf = async (s: Stack, customerRef: string) =>
    (await s.hub.ctx.db.query<OutboxView>(
      `SELECT o.kind, o.status, o.next_attempt_at, o.created_at FROM outbox o JOIN customers c ON c.id = o.customer_id
       WHERE c.provider_ref = $1 ORDER BY o.id`,
      [customerRef],
    )).rows;

  maybe('a final failure already due opens its case in the same transaction as the event, with no handover_check row', async () => {
    const s = await stack(0);
    const f = { ...ids(), amount: 4200, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await s.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await s.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the case at the agency');
    expect(s.sim.cases().filter((c) => c.reference === inv.case.id)).toHaveLength(1);

    const rows = await outboxOf(s, f.customer);
    expect(rows.map((r) => r.kind)).not.toContain('handover_check');
    expect(rows.find((r) => r.kind === 'agency.create_case')).toBeDefined();
    // One transaction: the event was processed at the moment the case was opened.
    const times = (await s.hub.ctx.db.query<{ processed_at: Date; opened_at: Date }>(
      `SELECT e.processed_at, k.opened_at FROM invoices i JOIN cases k ON k.id = i.case_id
       JOIN exchanges x ON x.invoice_id = i.id JOIN inbound_events e ON e.id = x.inbound_event_id
       WHERE i.provider_ref = $1`,
      [f.invoice],
    )).rows;
    expect(times.length).toBeGreaterThanOrEqual(1);
    for (const t of times) expect(new Date(t.processed_at).getTime()).toBe(new Date(t.opened_at).getTime());
    // The timeline is the same as with a separate check: pending_handover, then submitted.
    const statuses = inv.timeline.map((t: { status: string }) => t.status);
    expect(statuses.indexOf('pending_handover')).toBeGreaterThanOrEqual(0);
    expect(statuses.indexOf('submitted')).toBeGreaterThan(statuses.indexOf('pending_handover'));
  });

  maybe("one customer's invoices failing at the same moment stack into one case", async () => {
    const s = await stack(0);
    const base = ids();
    const invoices = [0, 1, 2].map((k) => ({ ...base, invoice: `${base.invoice}x${k}`, amount: 1000 + k, created: now() - 60 + k, nextPaymentAttempt: null, failureCode: 'insufficient_funds' }));
    const answers = await Promise.all(invoices.map((f) => s.sendStripe('acme', stripeEvents.paymentFailed(f))));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    // The case list is read only once the condition holds: read before the count, it could miss a
    // claim that landed between the two reads (principal 2001 with three claims stored).
    await waitFor(async () => {
      const claims = (await s.hub.ctx.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM claims k JOIN invoices i ON i.id = k.invoice_id WHERE i.provider_ref = ANY($1::text[])`,
        [invoices.map((f) => f.invoice)],
      )).rows[0].n;
      return claims === 3 ? true : null;
    }, 20_000, 100, 'three claims');
    const cases = (await s.get(`/v1/cases?customer=${base.customer}`)).body?.data ?? [];
    expect(cases).toHaveLength(1);
    expect(cases[0].principal).toEqual({ value: 3003, currency: 'EUR' });
    expect((await outboxOf(s, base.customer)).map((r) => r.kind)).not.toContain('handover_check');
  });

  maybe('a hand-over due later keeps its own handover_check row, due then, and opens no case yet', async () => {
    const s = await stack(3);
    const f = { ...ids(), amount: 4300, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await s.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    await waitFor(async () => (await s.get(`/v1/invoices/${f.invoice}`)).body?.status === 'pending_handover', 20_000, 100, 'the event to be processed');
    const pending = (await s.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE kind = 'process_event' AND status <> 'done'`)).rows[0].n;
    expect(pending).toBe(0);
    const rows = await outboxOf(s, f.customer);
    const check = rows.find((r) => r.kind === 'handover_check');
    expect(check).toMatchObject({ status: 'pending' });
    const dueInDays = (new Date(check!.next_attempt_at).getTime() - Date.now()) / 86_400_000;
    expect(dueInDays).toBeGreaterThan(2.9);
    expect(dueInDays).toBeLessThan(3.1);
    expect(rows.map((r) => r.kind)).not.toContain('agency.create_case');
    const inv = (await s.get(`/v1/invoices/${f.invoice}`)).body;
    expect(inv.status).toBe('pending_handover');
    expect(inv.case ?? null).toBeNull();
  });
});
