/**
 * apply_update in batches (src/sync/update-batch.ts, issue 14), over both stores: the agency's
 * stored updates are claimed in one statement and applied in one transaction, each once; one
 * update whose write fails never fails its batch (only it is settled as a failure); and running
 * the same rows again applies nothing twice.
 */
import type { HubContext } from '../../src/context';
import type { AgencyUpdate } from '../../src/domain/types';
import { claimEventBatch, EVENT_BATCH_DEFAULTS } from '../../src/outbox/batch';
import type { OutboxRow } from '../../src/outbox/outbox';
import { runUpdateBatch } from '../../src/sync/update-batch';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { servicesIt } from '../support/services';
import { BACKENDS, type Backend, type BackendEnv } from './backends';

describe.each<Backend>(BACKENDS)('apply_update in batches ($name)', (backend) => {
  let env: BackendEnv | undefined;
  const test = backend.mode === 'embedded' ? it : servicesIt;

  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);

  async function db(): Promise<BackendEnv['db']> {
    env ??= await backend.open();
    return env.db;
  }

  /** The hub's context over this store, its transactions and their statements counted; no queue (nothing here needs one). */
  async function counted(): Promise<{ ctx: HubContext; txs: () => number; statements: () => number }> {
    const base = await db();
    let txs = 0;
    let statements = 0;
    const wrapped = {
      ...base, query: base.query.bind(base), exec: base.exec.bind(base),
      tx: <T>(fn: Parameters<typeof base.tx<T>>[0]) => {
        txs++;
        return base.tx((sql) => fn({ ...sql, query: ((text: string, params?: unknown[]) => (statements++, sql.query(text, params))) as typeof sql.query }));
      },
    };
    const ctx = {
      db: wrapped, clock: { now: () => new Date() }, logger: createLogger({ silent: true }), metrics: createMetrics(),
      dispatcher: { kind: 'in-process', dispatch: async () => undefined },
    } as unknown as HubContext;
    return { ctx, txs: () => txs, statements: () => statements };
  }

  let n = 0;
  /** Cases of one claim each, submitted to refagency; one stored update per case, owed as a pending apply_update row. */
  async function seed(count: number, status: AgencyUpdate['status'] = 'in_collection'): Promise<{ claimIds: string[]; updateIds: number[] }> {
    const d = await db();
    const at = new Date(Date.now() - 86_400_000);
    const claimIds: string[] = [];
    const updateIds: number[] = [];
    for (let i = 0; i < count; i++) {
      const tag = `UB${backend.mode}${Date.now().toString(36)}${++n}`;
      await d.query(`INSERT INTO customers (id, merchant_id, provider, provider_ref, name, type) VALUES ($1,'acme','stripe',$2,'Jan','consumer')`, [`cust_${tag}`, `cus_${tag}`]);
      await d.query(
        `INSERT INTO cases (id, merchant_id, customer_id, partner_id, partner_ref, status, currency, opened_at, last_claim_at) VALUES ($1,'acme',$2,'refagency',$3,'submitted','EUR',$4,$4)`,
        [`cse_${tag}`, `cust_${tag}`, `AG-${tag}`, at],
      );
      await d.query(
        `INSERT INTO invoices (id, merchant_id, customer_id, provider, provider_ref, currency, amount_due, status, case_id, failure_final, failure_count, first_failed_at)
         VALUES ($1,'acme',$2,'stripe',$3,'EUR',4900,'submitted',$4,true,1,$5)`,
        [`inv_${tag}`, `cust_${tag}`, `in_${tag}`, `cse_${tag}`, at],
      );
      await d.query(`INSERT INTO claims (id, case_id, invoice_id, merchant_id, principal, currency, status, sent_at) VALUES ($1,$2,$3,'acme',4900,'EUR','submitted',$4)`, [`clm_${tag}`, `cse_${tag}`, `inv_${tag}`, at]);
      const u: AgencyUpdate = { id: `upd_${tag}`, seq: 1, caseId: `AG-${tag}`, caseReference: `cse_${tag}`, claimReference: `clm_${tag}`, status, occurredAt: new Date().toISOString() };
      const stored = (await d.query<{ id: number }>(`INSERT INTO partner_updates (partner_id, update_id, via, payload) VALUES ('refagency',$1,'push',$2) RETURNING id`, [u.id, JSON.stringify(u)])).rows[0];
      await d.query(`INSERT INTO outbox (kind, lane, payload, idempotency_key) VALUES ('apply_update','hub',$1,$2)`, [JSON.stringify({ partnerUpdateId: stored.id }), `update-refagency-${u.id}`]);
      claimIds.push(`clm_${tag}`);
      updateIds.push(Number(stored.id));
    }
    return { claimIds, updateIds };
  }

  // A second ahead: the rows' next_attempt_at is the database's now(), in microseconds.
  const claim = async () => claimEventBatch(await db(), new Date(Date.now() + 1000), 30_000, 100, ['apply_update']);
  const statuses = async (table: 'claims' | 'partner_updates', ids: (string | number)[]) =>
    (await (await db()).query<{ status: string }>(`SELECT status FROM ${table} WHERE id = ANY($1) ORDER BY id`, [ids])).rows.map((r) => r.status);
  const historyOf = async (claimIds: string[]) =>
    Number((await (await db()).query<{ n: number }>(`SELECT count(*)::int AS n FROM status_history WHERE entity_id = ANY($1::text[])`, [claimIds])).rows[0].n);

  test('a batch of updates for many cases is claimed in one statement and applied in one transaction, each once', async () => {
    const { claimIds, updateIds } = await seed(10);
    const rows = await claim();
    expect(rows.map((r) => Number(r.payload.partnerUpdateId))).toEqual(updateIds);
    const { ctx, txs } = await counted();
    const out = await runUpdateBatch(ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
    expect(out.failed).toEqual([]);
    expect(out.done).toHaveLength(10);
    expect(txs()).toBe(1);
    expect(await statuses('claims', claimIds)).toEqual(claimIds.map(() => 'in_collection'));
    expect(await statuses('partner_updates', updateIds)).toEqual(updateIds.map(() => 'applied'));
    const after = (await (await db()).query<OutboxRow & { done_at: Date }>(`SELECT * FROM outbox WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)])).rows;
    expect(new Set(after.map((r) => r.status))).toEqual(new Set(['done']));
    expect(new Set(after.map((r) => new Date(r.done_at).getTime())).size).toBe(1);
    // The claim's and its invoice's timeline rows, written as one statement at the end: one of each per update.
    expect(await historyOf(claimIds)).toBe(10);

    // The same rows run again (a worker whose lease ran out): nothing is applied twice.
    await (await db()).query(`UPDATE outbox SET status = 'in_flight' WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
    const again = await runUpdateBatch(ctx, rows);
    expect(again.done).toHaveLength(10);
    expect(await historyOf(claimIds)).toBe(10);
  });

  test('set-based: a batch of 20 updates costs the same statements as a batch of 5', async () => {
    const cost = async (count: number) => {
      const { claimIds } = await seed(count);
      const rows = await claim();
      expect(rows).toHaveLength(count);
      const { ctx, txs, statements } = await counted();
      const out = await runUpdateBatch(ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
      expect(out.done).toHaveLength(count);
      expect(txs()).toBe(1);
      expect(await statuses('claims', claimIds)).toEqual(claimIds.map(() => 'in_collection'));
      return statements();
    };
    const five = await cost(5);
    const twenty = await cost(20);
    expect(twenty).toBe(five);
    // Locks and loads, the writes per table, the marks, the history and the completion.
    expect(five).toBeLessThanOrEqual(12);
  });

  test('one update whose write fails never fails its batch: the others commit, only it is settled as a failure', async () => {
    const d = await db();
    const { claimIds, updateIds } = await seed(7);
    const bad = claimIds[3];
    await d.exec(`
      CREATE OR REPLACE FUNCTION ub_fail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id = '${bad}' THEN RAISE EXCEPTION 'ub: refused claim %', NEW.id; END IF; RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS ub_fail ON claims;
      CREATE TRIGGER ub_fail BEFORE UPDATE ON claims FOR EACH ROW EXECUTE FUNCTION ub_fail();`);
    try {
      const rows = await claim();
      expect(rows).toHaveLength(7);
      const { ctx, txs } = await counted();
      const out = await runUpdateBatch(ctx, rows, { ...EVENT_BATCH_DEFAULTS, maxTxMs: 60_000 });
      expect(out.done).toHaveLength(6);
      expect(out.failed).toHaveLength(1);
      expect(String((out.failed[0].error as Error).message)).toContain('ub: refused claim');
      expect(txs()).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(7)) + 1);
      expect(await statuses('partner_updates', updateIds)).toEqual(updateIds.map((_, i) => (i === 3 ? 'received' : 'applied')));
      expect(await statuses('claims', claimIds)).toEqual(claimIds.map((_, i) => (i === 3 ? 'submitted' : 'in_collection')));
    } finally {
      await d.exec(`DROP TRIGGER IF EXISTS ub_fail ON claims`);
    }
  });
});
