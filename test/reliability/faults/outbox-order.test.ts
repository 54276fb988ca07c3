/**
 * The outbox rules the fault guarantees lean on, on both backends: calls about one case go in
 * the order they were decided (a row waits for the older unfinished rows of its case in its
 * partner lane); the reconciler offers each lane its oldest rows first, a bounded number per
 * lane, and skips lanes whose circuit is open; a claim given back is fenced by its lease; a
 * recovered partner's waiting rows are all due at once.
 */
import { addToOutbox, claimRow, completeRow, deadRow, dueRows, nextInCase, releaseRow, rescheduleRow, wakeLane } from '../../../src/outbox/outbox';
import type { Sql } from '../../../src/store/db';
import { BACKENDS, type Backend, type BackendEnv } from '../../integration/backends';

let seq = 0;

describe.each<Backend>(BACKENDS)('outbox order and reconciling ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;
  beforeAll(async () => {
    available = await backend.available();
    if (available) env = await backend.open();
  }, 30_000);
  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);
  const maybe = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    });

  const now = () => new Date();
  const add = (sql: Sql, o: { lane: string; caseId?: string; dueAt?: Date; kind?: 'agency.create_case' | 'agency.add_claim' | 'agency.withdraw' | 'process_event' }) =>
    addToOutbox(sql, { kind: o.kind ?? 'agency.add_claim', lane: o.lane, payload: {} as never, idempotencyKey: `order-${++seq}-${Date.now()}`, caseId: o.caseId ?? null, dueAt: o.dueAt }, now()).then((x) => x!);

  maybe('a row of a partner lane waits while an older row of its case is pending or in flight', async () => {
    const lane = `partner.order${seq}`;
    const kase = `cse_order_${seq}`;
    const [a, b, other] = await env.db.tx(async (sql) => [await add(sql, { lane, caseId: kase, kind: 'agency.create_case' }), await add(sql, { lane, caseId: kase }), await add(sql, { lane, caseId: `${kase}x` })]);
    // b waits for a; a row of another case does not.
    expect(await env.db.tx((sql) => claimRow(sql, b.id, now(), 5000))).toBeNull();
    expect(await env.db.tx((sql) => claimRow(sql, other.id, now(), 5000))).not.toBeNull();
    // a in flight: b still waits; a in backoff (pending, not due): b still waits.
    const ra = (await env.db.tx((sql) => claimRow(sql, a.id, now(), 5000)))!;
    expect(await env.db.tx((sql) => claimRow(sql, b.id, now(), 5000))).toBeNull();
    await env.db.tx((sql) => rescheduleRow(sql, a.id, now(), new Date(Date.now() + 60_000), 'agency answered 503', { countAttempt: true }));
    expect(await env.db.tx((sql) => claimRow(sql, b.id, now(), 5000))).toBeNull();
    // The reconciler does not offer b either (it would only be refused).
    const due = await env.db.tx((sql) => dueRows(sql, now(), 0, 100, { onlyLane: lane }));
    expect(due.map((d) => d.id)).toEqual([]);
    // a done: b is next in its case, and may go.
    await env.db.tx((sql) => wakeLane(sql, lane, now()));
    expect(await env.db.tx((sql) => claimRow(sql, a.id, now(), 5000))).not.toBeNull();
    await env.db.tx((sql) => completeRow(sql, a.id, now()));
    expect((await env.db.tx((sql) => nextInCase(sql, ra)))?.id).toBe(b.id);
    expect(await env.db.tx((sql) => claimRow(sql, b.id, now(), 5000))).not.toBeNull();
  });

  maybe('a dead older row does not block its case; the hub lane is not ordered by case', async () => {
    const lane = `partner.dead${seq}`;
    const kase = `cse_dead_${seq}`;
    const [a, b] = await env.db.tx(async (sql) => [await add(sql, { lane, caseId: kase }), await add(sql, { lane, caseId: kase })]);
    await env.db.tx((sql) => claimRow(sql, a.id, now(), 5000));
    await env.db.tx((sql) => deadRow(sql, a.id, now(), 'agency answered 422', 422));
    expect(await env.db.tx((sql) => claimRow(sql, b.id, now(), 5000))).not.toBeNull();
    const [h1, h2] = await env.db.tx(async (sql) => [await add(sql, { lane: 'hub', caseId: kase, kind: 'process_event' }), await add(sql, { lane: 'hub', caseId: kase, kind: 'process_event' })]);
    expect(await env.db.tx((sql) => claimRow(sql, h2.id, now(), 5000))).not.toBeNull();
    expect(await env.db.tx((sql) => claimRow(sql, h1.id, now(), 5000))).not.toBeNull();
  });

  maybe('the reconciler offers each lane its oldest rows, a bounded number per lane, and skips lanes held back', async () => {
    const busy = `partner.busy${seq}`;
    const quiet = `partner.quiet${seq}`;
    const ids = await env.db.tx(async (sql) => {
      const out: number[] = [];
      for (let i = 0; i < 6; i++) out.push((await add(sql, { lane: busy, caseId: `cse_busy_${seq}_${i}`, dueAt: new Date(Date.now() - (i % 3) * 1000) })).id);
      out.push((await add(sql, { lane: quiet, caseId: `cse_quiet_${seq}` })).id);
      return out;
    });
    const due = await env.db.tx((sql) => dueRows(sql, now(), 0, 4));
    const mine = due.filter((d) => d.lane === busy || d.lane === quiet);
    // Oldest (by id) first in each lane, whatever their due times; at most 4 of the busy lane; the quiet one not starved.
    expect(mine.filter((d) => d.lane === busy).map((d) => d.id)).toEqual(ids.slice(0, 4));
    expect(mine.filter((d) => d.lane === quiet).map((d) => d.id)).toEqual([ids[6]]);
    const skipping = await env.db.tx((sql) => dueRows(sql, now(), 0, 100, { skipLanes: [busy] }));
    expect(skipping.some((d) => d.lane === busy)).toBe(false);
    expect(skipping.some((d) => d.lane === quiet)).toBe(true);
  });

  maybe('a claim given back is fenced by its lease: a row taken again since is left alone', async () => {
    const lane = `partner.fence${seq}`;
    const a = await env.db.tx((sql) => add(sql, { lane, caseId: `cse_fence_${seq}` }));
    const first = (await env.db.tx((sql) => claimRow(sql, a.id, now(), 1)))!;
    await new Promise((r) => setTimeout(r, 10));
    // Its lease ran out; the reconciler frees it and another worker takes it.
    await env.db.tx((sql) => dueRows(sql, now(), 0, 10, { onlyLane: lane }));
    const second = (await env.db.tx((sql) => claimRow(sql, a.id, now(), 60_000)))!;
    expect(second.attempts).toBe(2);
    // The first worker's late give-back does nothing; the second worker's own does.
    expect(await env.db.tx((sql) => releaseRow(sql, a.id, now(), new Date(first.locked_until!)))).toBe(false);
    expect(await env.db.tx((sql) => releaseRow(sql, a.id, now(), new Date(second.locked_until!), 'circuit open'))).toBe(true);
    const back = (await env.db.query<{ status: string; attempts: number; last_error: string }>(`SELECT status, attempts, last_error FROM outbox WHERE id = $1`, [a.id])).rows[0];
    // Given back untouched: pending, the attempt not counted.
    expect(back).toEqual({ status: 'pending', attempts: 1, last_error: 'circuit open' });
  });

  maybe('a recovered partner: every row of its lane waiting out a backoff is due at once', async () => {
    const lane = `partner.wake${seq}`;
    const later = new Date(Date.now() + 3600_000);
    const [a, b] = await env.db.tx(async (sql) => [await add(sql, { lane, caseId: `cse_w1_${seq}`, dueAt: later }), await add(sql, { lane, caseId: `cse_w2_${seq}`, dueAt: later })]);
    expect((await env.db.tx((sql) => dueRows(sql, now(), 0, 10, { onlyLane: lane }))).length).toBe(0);
    expect(await env.db.tx((sql) => wakeLane(sql, lane, now()))).toBe(2);
    expect((await env.db.tx((sql) => dueRows(sql, now(), 0, 10, { onlyLane: lane }))).map((d) => d.id)).toEqual([a.id, b.id]);
  });
});
