/**
 * The sync log at 100,000 entries for one merchant (issue 5: "paging that stays fast at 100,000
 * entries"): rows inserted with generate_series, then the pages the dashboard asks for — first
 * page, a deep page by cursor, the 2-second `after=` poll, filters — and the CSV export of all of
 * them, timed and written to the test log. Timings are reported, not asserted (they depend on the
 * machine); what is asserted is that every page is the right one.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack, type Stack, type Mode } from '../support/stack';
import { postgresAvailable, redisAvailable } from '../support/services';
import { createApp } from '../../src/http/app';
import { installDashboard } from '../../src/dashboard';

const N = 100_000;

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

describe.each<Mode>(['embedded', 'services'])('sync log with 100,000 entries (%s mode)', (mode) => {
  let stack: Stack;
  let server: http.Server;
  let base: string;
  let available = true;
  const timings: string[] = [];
  let maxId = 0;
  let minId = 0;

  async function timed<T>(label: string, fn: () => Promise<T>, runs = 5): Promise<T> {
    let result!: T;
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      result = await fn();
      ms.push(performance.now() - t0);
    }
    const sorted = [...ms].sort((a, b) => a - b);
    timings.push(`${label.padEnd(58)} first ${ms[0].toFixed(1).padStart(7)} ms   median of ${runs} ${sorted[Math.floor(runs / 2)].toFixed(1).padStart(7)} ms`);
    return result;
  }

  const api = async (path: string, merchant = 'acme') => {
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${stack.token(merchant)}` } });
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r;
  };
  const page = async (query: string) => (await (await api(`/v1/sync-log?${query}`)).json()) as { data: { id: number; outcome: string; direction: string; customerId: string | null; at: string }[]; next: string | null };

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    stack = await startStack({ mode, sim: { stepMs: 60_000 } });
    stack.sim.pause();
    const db = stack.hub.ctx.db;
    await db.query(`INSERT INTO customers (id, merchant_id, provider, provider_ref, name) VALUES ('cust_scale_7', 'acme', 'stripe', 'cus_scale_7', 'Scale Seven')`);
    const t0 = performance.now();
    // 100,000 exchanges over 90 days, ascending with the id like real traffic: both directions,
    // mostly ok, a duplicate now and then, one in a thousand dead-lettered; 1 in 100 for one customer.
    await db.query(
      `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, http_status, latency_ms, customer_id, invoice_id, summary, request, response, created_at)
       SELECT 'acme',
              CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END,
              CASE WHEN g % 2 = 0 THEN 'stripe' ELSE 'refagency' END,
              CASE WHEN g % 2 = 0 THEN 'invoice.payment_failed' ELSE 'POST /v1/cases' END,
              CASE WHEN g % 1000 = 0 THEN 'dead' WHEN g % 7 = 0 THEN 'duplicate' ELSE 'ok' END,
              CASE WHEN g % 1000 = 0 THEN 401 ELSE 200 END,
              (g % 90) + 3,
              CASE WHEN g % 100 = 7 THEN 'cust_scale_7' ELSE 'cust_' || (g % 5000) END,
              'inv_' || g,
              'scale entry ' || g,
              jsonb_build_object('id', 'evt_' || g, 'type', 'invoice.payment_failed', 'data', jsonb_build_object('object', jsonb_build_object('id', 'in_' || g, 'amount_due', 4900 + g % 100, 'currency', 'eur', 'customer', 'cus_' || (g % 5000)))),
              CASE WHEN g % 2 = 1 THEN jsonb_build_object('id', 'case_' || g, 'status', 'submitted') END,
              now() - interval '90 days' + (g * interval '77 seconds')
       FROM generate_series(1, ${N}) g`,
    );
    timings.push(`${`insert ${N.toLocaleString('en')} rows (generate_series)`.padEnd(58)} ${(performance.now() - t0).toFixed(0)} ms`);
    // A little of another merchant's traffic, interleaved, which no acme page may show.
    await db.query(`INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, created_at) SELECT 'globex', 'in', 'stripe', 'invoice.paid', 'ok', now() FROM generate_series(1, 1000)`);
    const ids = await db.query<{ max: string; min: string }>(`SELECT max(id) AS max, min(id) AS min FROM exchanges WHERE merchant_id = 'acme' AND summary LIKE 'scale entry %'`);
    maxId = Number(ids.rows[0].max);
    minId = Number(ids.rows[0].min);
    const app = createApp(stack.hub.ctx, [(a) => installDashboard(a, stack.hub.ctx)]);
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 300_000);

  afterAll(async () => {
    if (!available) return;
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      server?.closeAllConnections();
    });
    await stack?.stop();
    // eslint-disable-next-line no-console
    console.log(`sync log at ${N.toLocaleString('en')} entries, ${mode} mode (${stack.hub.ctx.db.kind}):\n  ${timings.join('\n  ')}`);
  }, 60_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 120_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  maybe('the first page is the 50 newest, and the query walks the (merchant_id, id) index', async () => {
    const first = await timed('first page (limit 50)', () => page('limit=50'));
    expect(first.data.map((x) => x.id)).toEqual(Array.from({ length: 50 }, (_, i) => maxId - i));
    expect(first.next).toBe(String(first.data[49].id));
    await timed('first page (limit 500, the largest)', () => page('limit=500'));
    const plan = await stack.hub.ctx.db.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT id FROM exchanges WHERE merchant_id = 'acme' ORDER BY id DESC LIMIT 51`,
    );
    const text = plan.rows.map((r) => Object.values(r)[0]).join(' | ');
    timings.push(`plan of the first page: ${text}`);
    expect(text).toMatch(/Index/);
  });

  maybe('a page deep in the log, by cursor, continues exactly where the previous one ended', async () => {
    const mid = String(Math.floor((minId + maxId) / 2));
    const deep = await timed('page at the middle (cursor, 50 000 entries down)', () => page(`limit=50&cursor=${mid}`));
    expect(deep.data[0].id).toBe(Number(mid) - 1);
    const next = await page(`limit=50&cursor=${deep.next}`);
    expect(next.data[0].id).toBe(deep.data[49].id - 1);
    const last = await timed('last page (cursor near the oldest)', () => page(`limit=50&cursor=${minId + 10}`));
    expect(last.data.map((x) => x.id)).toEqual(Array.from({ length: 10 }, (_, i) => minId + 9 - i));
    expect(last.next).toBeNull();
  });

  maybe('the live poll (after=<newest id>) answers only what is newer', async () => {
    const empty = await timed('poll: after=<newest id>, nothing new', () => page(`after=${maxId + 10_000}&limit=200`));
    expect(empty.data).toEqual([]);
    const few = await timed('poll: after=<newest id − 5>', () => page(`after=${maxId - 5}&limit=200`));
    expect(few.data.map((x) => x.id)).toEqual([maxId, maxId - 1, maxId - 2, maxId - 3, maxId - 4]);
  });

  maybe('filters stay correct: outcome, direction, customer, time range', async () => {
    const dead = await timed('filter outcome=dead (100 of 100 000)', () => page('outcome=dead&limit=50'));
    expect(dead.data).toHaveLength(50);
    expect(dead.data.every((x) => x.outcome === 'dead')).toBe(true);
    const deadAll = await page('outcome=dead&limit=500');
    expect(deadAll.data).toHaveLength(100);
    const inbound = await timed('filter direction=in', () => page('direction=in&limit=50'));
    expect(inbound.data.every((x) => x.direction === 'in')).toBe(true);
    const cust = await timed('filter customer=cus_scale_7 (1 000 entries)', () => page('customer=cus_scale_7&limit=50'));
    expect(cust.data).toHaveLength(50);
    expect(cust.data.every((x) => x.customerId === 'cust_scale_7')).toBe(true);
    const from = new Date(Date.now() - 45 * 86_400_000).toISOString();
    const to = new Date(Date.now() - 44 * 86_400_000).toISOString();
    const day = await timed('filter one day, 45 days ago (from/to)', () => page(`from=${from}&to=${to}&limit=50`));
    expect(day.data.length).toBe(50);
    expect(day.data.every((x) => x.at >= from && x.at < to)).toBe(true);
  });

  maybe('the CSV export streams all 100,000 entries', async () => {
    let bytes = 0;
    let lines = 0;
    await timed(
      'CSV export of the whole log (/v1/sync-log.csv)',
      async () => {
        const r = await api('/v1/sync-log.csv');
        const text = await r.text();
        bytes = Buffer.byteLength(text);
        lines = text.split('\r\n').length - 2; // header, and the empty string after the last CRLF
      },
      1,
    );
    timings.push(`  → ${lines.toLocaleString('en')} rows, ${(bytes / 1024 / 1024).toFixed(1)} MiB`);
    expect(lines).toBe(N);
    const dead = await (await api('/v1/sync-log.csv?outcome=dead')).text();
    expect(dead.split('\r\n').length - 2).toBe(100);
  });
});
