/**
 * Group commit of small write-only transactions (src/outbox/commit-group.ts, issue 14), over both
 * stores: callers that come together share one transaction and are answered only once it has
 * committed; their held-back rows are written once for the group; one failing caller never fails
 * the others (each then goes alone and gets its own outcome); a later caller gets a group of its own.
 */
import { createCommitGroup } from '../../src/outbox/commit-group';
import { completeRow, addToOutbox, type DispatchItem } from '../../src/outbox/outbox';
import { recordExchanges } from '../../src/exchanges/exchange-log';
import type { Database } from '../../src/store/db';
import { servicesIt } from '../support/services';
import { BACKENDS, type Backend, type BackendEnv } from './backends';

describe.each<Backend>(BACKENDS)('commit group ($name)', (backend) => {
  let env: BackendEnv | undefined;
  const test = backend.mode === 'embedded' ? it : servicesIt;
  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);
  async function db(): Promise<Database> {
    env ??= await backend.open();
    return env.db;
  }

  /** The store with its transactions counted, and a dispatcher that records what it is handed. */
  async function setup() {
    const base = await db();
    let txs = 0;
    const counted = { ...base, kind: base.kind, query: base.query.bind(base), exec: base.exec.bind(base), tx: <T>(fn: Parameters<typeof base.tx<T>>[0]) => (txs++, base.tx(fn)) } as Database;
    const dispatched: DispatchItem[] = [];
    const dispatcher = { kind: 'in-process', dispatch: async (items: DispatchItem[]) => void dispatched.push(...items) } as never;
    const group = createCommitGroup({ db: counted, dispatcher, now: () => new Date() }, { maxWaitMs: 5 });
    return { group, txs: () => txs, dispatched };
  }

  let n = 0;
  const tag = () => `cg${backend.mode}${Date.now().toString(36)}${++n}`;
  const pendingRow = async (key: string) =>
    (await (await db()).tx((sql) => addToOutbox(sql, { kind: 'handover_check', lane: 'hub', payload: { customerId: key }, idempotencyKey: key }, new Date())))!.id;
  const statusOf = async (id: number) => (await (await db()).query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [id])).rows[0].status;
  const exchangesOf = async (t: string) => (await (await db()).query<{ summary: string }>(`SELECT summary FROM exchanges WHERE party = $1 ORDER BY id`, [t])).rows.map((r) => r.summary);

  test('callers that come together share one transaction, are answered after it committed, and their rows are written once for the group', async () => {
    const { group, txs, dispatched } = await setup();
    const t = tag();
    const ids = await Promise.all([1, 2, 3, 4, 5].map((i) => pendingRow(`${t}-${i}`)));
    const answers = await Promise.all(ids.map((id, i) => group.commit(async (sql, outbox) => {
      await completeRow(sql, id, new Date(), { status: 201, body: { i } });
      await recordExchanges(sql, [{ merchantId: null, direction: 'out', party: t, operation: 'POST /v1/cases', outcome: 'ok', summary: `call ${i}`, at: new Date() }]);
      await outbox.add({ kind: 'apply_update', lane: 'hub', payload: { partnerUpdateId: 1000 + i }, idempotencyKey: `${t}-next-${i}` });
      // Answered only once committed: by then the row is done for everybody.
      return id;
    }).then(async (id) => statusOf(id))));
    expect(answers).toEqual(ids.map(() => 'done'));
    expect(txs()).toBe(1);
    expect(await exchangesOf(t)).toEqual(['call 0', 'call 1', 'call 2', 'call 3', 'call 4']);
    // The new rows were written (once) and rung as one doorbell message (src/outbox/batch.ts).
    expect(dispatched.filter((d) => d.kind === 'apply_update')).toHaveLength(1);
    expect(Number((await (await db()).query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE idempotency_key LIKE $1`, [`${t}-next-%`])).rows[0].n)).toBe(5);
  });

  test('one failing caller never fails the others: each then goes alone and gets its own outcome', async () => {
    const { group } = await setup();
    const t = tag();
    const ids = await Promise.all([1, 2, 3].map((i) => pendingRow(`${t}-${i}`)));
    const outcomes = await Promise.allSettled(ids.map((id, i) => group.commit(async (sql) => {
      await completeRow(sql, id, new Date());
      await recordExchanges(sql, [{ merchantId: null, direction: 'out', party: t, operation: 'POST', outcome: 'ok', summary: `call ${i}`, at: new Date() }]);
      if (i === 1) await sql.query(`SELECT 1/0`);
    })));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect([await statusOf(ids[0]), await statusOf(ids[1]), await statusOf(ids[2])]).toEqual(['done', 'pending', 'done']);
    expect(await exchangesOf(t)).toEqual(['call 0', 'call 2']);
  });

  test('a caller that comes after a group has left gets a group of its own', async () => {
    const { group, txs } = await setup();
    const t = tag();
    const [a, b] = await Promise.all([pendingRow(`${t}-a`), pendingRow(`${t}-b`)]);
    await group.commit((sql) => completeRow(sql, a, new Date()));
    await group.commit((sql) => completeRow(sql, b, new Date()));
    expect(txs()).toBe(2);
    expect([await statusOf(a), await statusOf(b)]).toEqual(['done', 'done']);
  });
});
