/**
 * A batch's held-back writes (src/store/deferred.ts, src/ledger/history.ts deferHistory, issue 14): rows written through
 * the batch's handle are not in the table until flushed, are then written in the order they were
 * added (one statement), and a read that flushes first (flushHistory) sees every one of them.
 */
import type { Database } from '../../src/store/db';
import { addHistory, addHistoryRows, deferHistory, flushHistory } from '../../src/ledger/history';
import { migratedPglite } from '../support/embedded-db';

const store = migratedPglite();

const entry = (entityId: string, status: string) => ({ merchantId: 'acme', entity: 'invoice' as const, entityId, status, source: 'stripe', occurredAt: '2026-01-01T00:00:00Z' });
const rowsOf = (sql: { query: Database['query'] }, id: string) =>
  sql.query<{ status: string }>(`SELECT status FROM status_history WHERE entity_id = $1 ORDER BY id`, [id]).then((r) => r.rows.map((x) => x.status));

it('holds rows back until flushed, then writes them in the order they were added; a flushing read sees them all', async () => {
  const now = new Date();
  await store().tx(async (tx) => {
    const held = deferHistory(tx);
    await addHistory(held.sql, entry('inv_dh1', 'payment_failed'), now);
    await addHistoryRows(held.sql, [entry('inv_dh1', 'pending_handover'), entry('inv_dh1', 'disputed')], now);
    expect(await rowsOf(tx, 'inv_dh1')).toEqual([]);
    await flushHistory(held.sql);
    expect(await rowsOf(tx, 'inv_dh1')).toEqual(['payment_failed', 'pending_handover', 'disputed']);
    await addHistory(held.sql, entry('inv_dh1', 'won'), now);
    await held.flush();
    await held.flush(); // nothing left: writes nothing twice
  });
  expect(await rowsOf(store(), 'inv_dh1')).toEqual(['payment_failed', 'pending_handover', 'disputed', 'won']);
});

it('writes at once through any other handle', async () => {
  await store().tx(async (tx) => {
    await addHistory(tx, entry('inv_dh2', 'payment_failed'), new Date());
    expect(await rowsOf(tx, 'inv_dh2')).toEqual(['payment_failed']);
  });
});

it('holds sync-log rows back the same way, per table, and flushes both tables', async () => {
  const { deferWrites } = await import('../../src/store/deferred');
  const { recordExchanges } = await import('../../src/exchanges/exchange-log');
  const exchangesOf = (sql: { query: Database['query'] }) =>
    sql.query<{ summary: string }>(`SELECT summary FROM exchanges WHERE case_id = 'cse_dh3' ORDER BY id`).then((r) => r.rows.map((x) => x.summary));
  const at = new Date();
  const ex = (summary: string) => ({ merchantId: 'acme', direction: 'in' as const, party: 'refagency', operation: 'update', outcome: 'ok' as const, caseId: 'cse_dh3', summary, at });
  await store().tx(async (tx) => {
    const held = deferWrites(tx);
    await recordExchanges(held.sql, [ex('first')]);
    await addHistory(held.sql, entry('inv_dh3', 'submitted'), at);
    await recordExchanges(held.sql, [ex('second'), ex('third')]);
    expect(await exchangesOf(tx)).toEqual([]);
    expect(await rowsOf(tx, 'inv_dh3')).toEqual([]);
    await held.flush();
  });
  expect(await exchangesOf(store())).toEqual(['first', 'second', 'third']);
  expect(await rowsOf(store(), 'inv_dh3')).toEqual(['submitted']);
});
