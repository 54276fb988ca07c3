/**
 * The outbox sweep (issue 14; src/outbox/sweep.ts) and migration 020's queue settings, on PGlite
 * and PostgreSQL: done and cancelled rows older than delivery.doneRetentionDays go, in bounded
 * batches; dead, unfinished and young rows stay, and so do the finished rows the hub reads back
 * (a case's submission, a Stripe write-back — the echo check still recognises an old write-back
 * after a sweep). The partial indexes and autovacuum settings are in place on both stores.
 */
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { sweepCutoff, sweepFinishedRows, vacuumEmbedded } from '../../src/outbox/sweep';
import { writeBackEcho } from '../../src/ledger/payment-ledger';
import { configSchema } from '../../src/config/schema';
import { DAY_MS } from '../../src/domain/clock';
import type { PaymentEvent } from '../../src/domain/types';
import { DB_BACKENDS, dbSuite } from './db-backends';

const NOW = new Date('2026-06-01T12:00:00Z');
const daysAgo = (d: number) => new Date(NOW.getTime() - d * DAY_MS);

let seq = 0;
interface Row {
  kind?: string;
  lane?: string;
  status: 'pending' | 'in_flight' | 'done' | 'dead' | 'cancelled';
  doneAt?: Date | null;
  key?: string;
  invoiceId?: string;
  payload?: Record<string, unknown>;
}

describe('delivery.doneRetentionDays', () => {
  it('defaults to 7 days', () => {
    expect(configSchema.shape.delivery.parse(undefined).doneRetentionDays).toBe(7);
    expect(configSchema.shape.delivery.parse({}).doneRetentionDays).toBe(7);
    expect(() => configSchema.shape.delivery.parse({ doneRetentionDays: 0 })).toThrow();
  });
});

describe.each(DB_BACKENDS)('outbox sweep ($name)', (backend) => {
  let db: Database;
  const { maybe } = dbSuite(backend, async (opened) => {
    db = opened;
    await migrate(db);
  });

  async function add(rows: Row[]): Promise<string[]> {
    const keys: string[] = [];
    for (const r of rows) {
      const key = r.key ?? `sweep-${++seq}`;
      keys.push(key);
      await db.query(
        `INSERT INTO outbox (merchant_id, kind, lane, payload, idempotency_key, status, next_attempt_at, done_at, invoice_id, created_at, updated_at)
         VALUES ('acme', $1, $2, $3, $4, $5, $6, $7, $8, $6, $6)`,
        [r.kind ?? 'process_event', r.lane ?? 'hub', JSON.stringify(r.payload ?? {}), key, r.status, daysAgo(30), r.doneAt ?? null, r.invoiceId ?? null],
      );
    }
    return keys;
  }
  const present = async (keys: string[]) =>
    (await db.query<{ idempotency_key: string }>(`SELECT idempotency_key FROM outbox WHERE idempotency_key = ANY($1::text[]) ORDER BY id`, [keys])).rows.map((r) => r.idempotency_key);
  const clear = () => db.query('DELETE FROM outbox');

  maybe('deletes done and cancelled rows past the retention, keeps the young, the dead and the unfinished', async () => {
    await clear();
    const old = await add([
      { status: 'done', doneAt: daysAgo(8) },
      { status: 'done', doneAt: daysAgo(30), kind: 'agency.add_claim', lane: 'partner.refagency' },
      { status: 'cancelled', doneAt: daysAgo(9), kind: 'agency.report_payment', lane: 'partner.refagency' },
      { status: 'done', doneAt: daysAgo(7.01), kind: 'merchant.webhook', lane: 'merchant.acme' },
    ]);
    const kept = await add([
      { status: 'done', doneAt: daysAgo(6.99) },
      { status: 'cancelled', doneAt: daysAgo(1) },
      { status: 'dead', kind: 'agency.create_case', lane: 'partner.refagency' },
      { status: 'dead' },
      { status: 'pending' },
      { status: 'in_flight' },
      // A finished row without its finishing time is not swept (every finish sets it; kept if not).
      { status: 'done', doneAt: null },
    ]);
    expect(sweepCutoff(NOW, 7).getTime()).toBe(NOW.getTime() - 7 * DAY_MS);
    const r = await sweepFinishedRows(db, NOW, 7);
    expect(r).toEqual({ deleted: 4, more: false });
    expect(await present([...old, ...kept])).toEqual(kept);
    // Nothing more to do on a second pass.
    expect(await sweepFinishedRows(db, NOW, 7)).toEqual({ deleted: 0, more: false });
  });

  maybe('keeps the finished rows the hub reads back: a case submission (done or cancelled), a done Stripe write-back', async () => {
    await clear();
    const kept = await add([
      { status: 'done', doneAt: daysAgo(400), kind: 'agency.create_case', lane: 'partner.refagency', key: 'case-cse_sweep_1' },
      { status: 'cancelled', doneAt: daysAgo(400), kind: 'agency.create_case', lane: 'partner.refagency', key: 'case-cse_sweep_2' },
      { status: 'done', doneAt: daysAgo(400), kind: 'psp.writeback', lane: 'psp.stripe', invoiceId: 'inv_sweep', payload: { action: 'pay', invoiceId: 'inv_sweep' } },
    ]);
    // A cancelled write-back is read by neither (the echo check skips it), a customer-flags
    // write-back (no invoice) by nobody: they go.
    const gone = await add([
      { status: 'cancelled', doneAt: daysAgo(400), kind: 'psp.writeback', lane: 'psp.stripe', invoiceId: 'inv_sweep', payload: { action: 'pay' } },
      { status: 'done', doneAt: daysAgo(400), kind: 'psp.writeback', lane: 'psp.stripe', payload: { action: 'customer_flags', ref: 'cus_1', flags: [] } },
    ]);
    expect((await sweepFinishedRows(db, NOW, 7)).deleted).toBe(2);
    expect(await present([...kept, ...gone])).toEqual(kept);

    // The echo of that year-old write-back is still recognised as ours, not taken for a new payment.
    const ev = { merchantId: 'acme', provider: 'stripe', providerEventId: 'evt_echo', providerEventType: 'invoice.paid', kind: 'payment_succeeded', occurredAt: NOW.toISOString(), detail: { paidOutOfBand: true } } as unknown as PaymentEvent;
    expect(await db.tx((sql) => writeBackEcho(sql, ev, 'inv_sweep'))).toMatchObject({ action: 'pay', matchedBy: 'paid_out_of_band' });
  });

  maybe('works in bounded batches and says when a pass stopped with more to do', async () => {
    await clear();
    const old = await add(Array.from({ length: 10 }, () => ({ status: 'done' as const, doneAt: daysAgo(20) })));
    expect(await sweepFinishedRows(db, NOW, 7, { batch: 3, maxBatches: 2 })).toEqual({ deleted: 6, more: true });
    expect(await present(old)).toHaveLength(4);
    expect(await sweepFinishedRows(db, NOW, 7, { batch: 3, maxBatches: 5 })).toEqual({ deleted: 4, more: false });
    expect(await present(old)).toEqual([]);
  });

  maybe('migration 020: the queue indexes replace outbox_due, autovacuum settings are on the queue tables', async () => {
    const idx = (await db.query<{ indexname: string; indexdef: string }>(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'outbox' ORDER BY indexname`)).rows;
    const names = idx.map((i) => i.indexname);
    expect(names).toEqual(expect.arrayContaining(['outbox_pending', 'outbox_in_flight', 'outbox_dead', 'outbox_finished', 'outbox_writebacks', 'outbox_case_order']));
    expect(names).not.toContain('outbox_due');
    expect(idx.find((i) => i.indexname === 'outbox_pending')!.indexdef).toMatch(/\(id\) WHERE \(status = 'pending'::text\)/);
    const opts = Object.fromEntries(
      (await db.query<{ relname: string; reloptions: string[] | null }>(`SELECT relname, reloptions FROM pg_class WHERE relname IN ('outbox', 'inbound_events', 'partner_updates')`)).rows.map((r) => [r.relname, r.reloptions ?? []]),
    );
    expect(opts.outbox).toEqual(expect.arrayContaining(['autovacuum_vacuum_scale_factor=0.01', 'autovacuum_analyze_scale_factor=0.02']));
    expect(opts.inbound_events).toEqual(expect.arrayContaining(['autovacuum_vacuum_scale_factor=0.02']));
    expect(opts.partner_updates).toEqual(expect.arrayContaining(['autovacuum_vacuum_scale_factor=0.02']));
  });

  maybe('vacuums the embedded database after a sweep (PGlite has no autovacuum); PostgreSQL is left to autovacuum', async () => {
    await clear();
    await add(Array.from({ length: 50 }, () => ({ status: 'done' as const, doneAt: daysAgo(20) })));
    await sweepFinishedRows(db, NOW, 7);
    await vacuumEmbedded(db);
    const stats = async (table: string) =>
      (await db.query<{ last_vacuum: Date | null; last_analyze: Date | null }>(`SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = $1`, [table])).rows[0];
    if (db.kind === 'pglite') {
      expect(await stats('outbox')).toEqual({ last_vacuum: expect.any(Date), last_analyze: expect.any(Date) });
      // The whole database is vacuumed (wraparound), not only the outbox.
      expect((await stats('invoices')).last_vacuum).toEqual(expect.any(Date));
    } else {
      expect(await stats('outbox')).toEqual({ last_vacuum: null, last_analyze: null });
    }
  });
});
