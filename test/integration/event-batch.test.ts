/**
 * process_event in batches (src/pipeline/event-batch.ts, issue 14): a batch is claimed in one
 * statement and applied in one transaction; two workers never claim the same row; one bad event
 * never fails its batch (the transaction is split until the bad event is alone, and only it is
 * settled as a failure); and the hub's workers really work events in batches.
 *
 * The rows are made to wait an hour when inserted (a trigger), so the hub's own workers leave
 * them alone, and are claimed here "from the future" — the real claim, the real stage.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { runEventBatch } from '../../src/pipeline/event-batch';
import { claimEventBatch, renewBatchLease, EVENT_BATCH_DEFAULTS } from '../../src/outbox/batch';
import type { HubContext } from '../../src/context';
import type { OutboxRow } from '../../src/outbox/outbox';

const HOUR = 3600_000;
let n = 0;
const failure = (tag: string) => {
  n++;
  const t = `${tag}${Date.now().toString(36)}${n}`;
  return { invoice: `in_eb${t}`, customer: `cus_eb${t}`, subscription: `sub_eb${t}`, amount: 1000 + n, created: Math.floor(Date.now() / 1000) - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
};

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  if ((await postgresAvailable()) && (await redisAvailable())) return true;
  if (process.env.CI === 'true') throw new Error('PostgreSQL and Redis are required under CI');
  return false;
}

describe.each<Mode>(['embedded', 'services'])('process_event in batches (%s mode)', (mode) => {
  let available = true;
  let s: Stack;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    s = await startStack({ mode, handoverAfterDays: 0, sim: { stepMs: 60_000 } });
    s.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (s) await s.stop();
  }, 60_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return void console.warn(`skipped outside CI: ${mode} mode needs PostgreSQL and Redis`);
      await fn();
    }, timeout);

  /** Send these Stripe failures with their process_event rows made to wait an hour (so only this test claims them). */
  async function sendParked(fs: Parameters<typeof stripeEvents.paymentFailed>[0][]): Promise<void> {
    const db = s.hub.ctx.db;
    await db.exec(`
      CREATE OR REPLACE FUNCTION eb_park() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.kind = 'process_event' THEN NEW.next_attempt_at := NEW.next_attempt_at + interval '1 hour'; END IF; RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS eb_park ON outbox;
      CREATE TRIGGER eb_park BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION eb_park();`);
    try {
      for (const f of fs) expect((await s.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    } finally {
      await db.exec(`DROP TRIGGER IF EXISTS eb_park ON outbox`);
    }
  }

  /** Store `count` failures whose process_event rows wait an hour; returns their invoice refs. */
  async function parked(tag: string, count: number): Promise<string[]> {
    const fs = Array.from({ length: count }, () => failure(tag));
    await sendParked(fs);
    return fs.map((f) => f.invoice);
  }

  const claimParked = (limit: number) => claimEventBatch(s.hub.ctx.db, new Date(Date.now() + 2 * HOUR), 30_000, limit);

  /** The hub's context with its transactions counted. */
  function counted(): { ctx: HubContext; txs: () => number; statements: string[] } {
    let txs = 0;
    const statements: string[] = [];
    const base = s.hub.ctx;
    const db = {
      ...base.db, query: base.db.query.bind(base.db), exec: base.db.exec.bind(base.db),
      tx: <T>(fn: Parameters<typeof base.db.tx<T>>[0]) => {
        txs++;
        return base.db.tx((sql) => fn({ ...sql, query: ((text: string, params?: unknown[]) => (statements.push(text), sql.query(text, params))) as typeof sql.query }));
      },
    };
    return { ctx: { ...base, db } as HubContext, txs: () => txs, statements };
  }

  const invoiceCount = async (refs: string[]) =>
    Number((await s.hub.ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM invoices WHERE provider_ref = ANY($1::text[])`, [refs])).rows[0].n);
  const rowsOf = async (ids: number[]) => (await s.hub.ctx.db.query<OutboxRow>(`SELECT * FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY id`, [ids])).rows;

  maybe('a batch is claimed in one statement and applied in one transaction', async () => {
    const refs = await parked('a', 12);
    const rows = await claimParked(100);
    expect(rows).toHaveLength(12);
    expect(rows.every((r) => r.status === 'in_flight' && r.attempts === 1 && r.locked_until)).toBe(true);
    const { ctx, txs } = counted();
    const out = await runEventBatch(ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
    expect(out.failed).toEqual([]);
    expect(out.done).toHaveLength(12);
    expect(txs()).toBe(1);
    expect(await invoiceCount(refs)).toBe(12);
    const after = await rowsOf(rows.map((r) => Number(r.id)));
    expect(new Set(after.map((r) => r.status))).toEqual(new Set(['done']));
    // One commit: the batch's rows share their completion time.
    expect(new Set(after.map((r) => new Date((r as OutboxRow & { done_at: string }).done_at).getTime())).size).toBe(1);
  });

  maybe("the hand-overs a batch makes due are checked at once: one read and one write for all of the batch's cases", async () => {
    const refs = await parked('h', 12);
    const rows = await claimParked(100);
    expect(rows).toHaveLength(12);
    const { ctx, statements } = counted();
    const out = await runEventBatch(ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
    expect(out.done).toHaveLength(12);
    // Twelve customers, twelve cases (hand-over after 0 days), each holding its invoice.
    const cases = (await s.hub.ctx.db.query<{ n: number; claims: number }>(
      `SELECT count(DISTINCT i.case_id)::int AS n, count(cl.id)::int AS claims FROM invoices i JOIN claims cl ON cl.invoice_id = i.id WHERE i.provider_ref = ANY($1::text[])`, [refs],
    )).rows[0];
    expect(cases).toEqual({ n: 12, claims: 12 });
    expect(statements.filter((t) => /INSERT INTO cases/.test(t))).toHaveLength(1);
    expect(statements.filter((t) => /AS q\(debtor_id, merchant_id, partner_id\)/.test(t))).toHaveLength(1);
  });

  maybe('two claims at once never take the same row, and a batch is never larger than asked', async () => {
    await parked('b', 10);
    const [x, y] = await Promise.all([claimParked(6), claimParked(6)]);
    expect(x.length).toBeLessThanOrEqual(6);
    expect(y.length).toBeLessThanOrEqual(6);
    const ids = [...x, ...y].map((r) => Number(r.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(10);
    await runEventBatch(s.hub.ctx, [...x, ...y].sort((a, b) => Number(a.id) - Number(b.id)));
  });

  maybe('one bad event never fails its batch: the others commit, only it is settled as a failure', async () => {
    const refs = await parked('c', 9);
    const bad = refs[4];
    // An SQL error for one event only, raised in the middle of its own writes.
    await s.hub.ctx.db.exec(`
      CREATE OR REPLACE FUNCTION eb_fail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.provider_ref = '${bad}' THEN RAISE EXCEPTION 'eb: refused invoice %', NEW.provider_ref; END IF; RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS eb_fail ON invoices;
      CREATE TRIGGER eb_fail BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION eb_fail();`);
    try {
      const rows = await claimParked(100);
      expect(rows).toHaveLength(9);
      const { ctx, txs } = counted();
      const out = await runEventBatch(ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
      expect(out.done).toHaveLength(8);
      expect(out.failed).toHaveLength(1);
      expect(String((out.failed[0].error as Error).message)).toContain('eb: refused invoice');
      // Halving 9 down to the bad one: far fewer transactions than one per event.
      expect(txs()).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(9)) + 1);
      expect(await invoiceCount(refs.filter((r) => r !== bad))).toBe(8);
      expect(await invoiceCount([bad])).toBe(0);
      const failedRow = (await rowsOf([Number(out.failed[0].row.id)]))[0];
      expect(failedRow.status).toBe('in_flight'); // the runner settles it (retry with backoff, as every row)
    } finally {
      await s.hub.ctx.db.exec(`DROP TRIGGER IF EXISTS eb_fail ON invoices`);
    }
  });

  maybe("one customer's failures in one batch, the newer first: the customer keeps the newer (its last failure, written once at the batch's end)", async () => {
    const db = s.hub.ctx.db;
    const newer = failure('f');
    const older = { ...failure('f'), customer: newer.customer, created: newer.created - 600, failureCode: 'card_declined' };
    await sendParked([newer, older]);
    const rows = await claimParked(100);
    expect(rows).toHaveLength(2);
    const out = await runEventBatch(s.hub.ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
    expect(out.done).toHaveLength(2);
    const c = (await db.query<{ last_failure_code: string; last_failure_at: Date }>(
      `SELECT last_failure_code, last_failure_at FROM customers WHERE provider = 'stripe' AND provider_ref = $1`, [newer.customer],
    )).rows[0];
    const codeOf = async (ref: string) => (await db.query<{ failure_code: string }>(`SELECT failure_code FROM invoices WHERE provider_ref = $1`, [ref])).rows[0].failure_code;
    expect(await codeOf(newer.invoice)).not.toBe(await codeOf(older.invoice));
    expect(c.last_failure_code).toBe(await codeOf(newer.invoice));
    expect(new Date(c.last_failure_at).getTime()).toBe(newer.created * 1000);
  });

  maybe('what a batch reads up front stays true while it works: one invoice failing twice, and two invoices of one new customer, in one batch', async () => {
    const db = s.hub.ctx.db;
    const first = { ...failure('g'), nextPaymentAttempt: Math.floor(Date.now() / 1000) + 3 * 86400 };
    const again = { ...first, created: first.created + 60, nextPaymentAttempt: null };
    const other = { ...failure('g'), customer: first.customer };
    await sendParked([first, again, other]);
    const rows = await claimParked(100);
    expect(rows).toHaveLength(3);
    const out = await runEventBatch(s.hub.ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
    expect(out.failed).toEqual([]);
    const invoices = (await db.query<{ provider_ref: string; failure_count: number; customer_id: string }>(
      `SELECT provider_ref, failure_count, customer_id FROM invoices WHERE provider_ref = ANY($1::text[]) ORDER BY provider_ref`, [[first.invoice, other.invoice]],
    )).rows;
    expect(invoices.map((i) => i.provider_ref).sort()).toEqual([first.invoice, other.invoice].sort());
    expect(Number(invoices.find((i) => i.provider_ref === first.invoice)!.failure_count)).toBe(2);
    expect(new Set(invoices.map((i) => i.customer_id)).size).toBe(1);
    const customers = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM customers WHERE provider = 'stripe' AND provider_ref = $1`, [first.customer])).rows[0].n;
    expect(Number(customers)).toBe(1);
  });

  maybe('a batch slower than its lease keeps its rows while it is worked, and frees them within a lease once it stops', async () => {
    await parked('e', 3);
    const future = new Date(Date.now() + 2 * HOUR);
    const rows = await claimEventBatch(s.hub.ctx.db, future, 300, 10);
    expect(rows).toHaveLength(3);
    const ids = rows.map((r) => Number(r.id));
    // The lease is counted from the claim's "now" (an hour ahead here): bring it to the real clock.
    const lease = new Date(Date.now() + 300);
    await s.hub.ctx.db.query(`UPDATE outbox SET locked_until = $2 WHERE id = ANY($1::bigint[])`, [ids, lease]);
    for (const r of rows) r.locked_until = lease;
    const freeExpired = () => s.hub.ctx.db.query(`UPDATE outbox SET status = 'pending', locked_until = NULL WHERE id = ANY($1::bigint[]) AND status = 'in_flight' AND locked_until < now()`, [ids]);
    const stop = renewBatchLease(s.hub.ctx, rows, 300);
    try {
      // Three leases long, with a reconciler freeing expired leases all the while.
      const until = Date.now() + 900;
      while (Date.now() < until) {
        await freeExpired();
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await rowsOf(ids)).map((r) => r.status)).toEqual(['in_flight', 'in_flight', 'in_flight']);
    } finally {
      stop();
    }
    await waitFor(async () => {
      await freeExpired();
      return (await rowsOf(ids)).every((r) => r.status === 'pending') || null;
    }, 5000, 50, 'the rows freed once the renewals stopped');
    await s.hub.ctx.db.query(`UPDATE outbox SET status = 'cancelled' WHERE id = ANY($1::bigint[])`, [ids]);
  });

  maybe("the hub's workers work a burst of events in batches, each applied once", async () => {
    const fs = Array.from({ length: 40 }, () => failure('d'));
    await Promise.all(fs.map((f) => s.sendStripe('acme', stripeEvents.paymentFailed(f))));
    const refs = fs.map((f) => f.invoice);
    const rows = await waitFor(async () => {
      const r = (await s.hub.ctx.db.query<{ status: string; done_at: Date | null }>(
        `SELECT o.status, o.done_at FROM invoices i JOIN exchanges x ON x.invoice_id = i.id
           JOIN outbox o ON o.kind = 'process_event' AND (o.payload->>'inboundEventId')::bigint = x.inbound_event_id
          WHERE i.provider_ref = ANY($1::text[])`,
        [refs],
      )).rows;
      return r.length === 40 && r.every((x) => x.status === 'done') ? r : null;
    }, 90_000, 100, 'every event processed');
    expect(await invoiceCount(refs)).toBe(40);
    // Fewer commits than events: several events completed by one transaction.
    expect(new Set(rows.map((r) => new Date(r.done_at!).getTime())).size).toBeLessThan(40);
  }, 150_000);
});
