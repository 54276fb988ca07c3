/**
 * The dashboard's own routes without a browser: the CSV exports of the sync log (with the
 * sync-log filters, paged through and streamed) and of the leakage report, case totals, and the
 * static files at /dashboard — all under the merchant's token, scoped to its data.
 */
import fc from 'fast-check';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { createApp } from '../../src/http/app';
import { installDashboard } from '../../src/dashboard';
import { csvCell, csvLine, parseCsv } from '../../src/dashboard/csv';
import { stripeEvents } from '../../sim/psp/stripe-events';

const DAY = 86_400;
const nowS = () => Math.floor(Date.now() / 1000);

describe('CSV cells', () => {
  it('quotes commas, quotes and line breaks, and reads back what it wrote', () => {
    expect(csvLine(['a', 'b,c', 'say "hi"', 'two\nlines', 'cr\rlf', null, 12, -3, true])).toBe('a,"b,c","say ""hi""","two\nlines","cr\rlf",,12,-3,true\r\n');
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 8 }), (cells) => {
        const expected = cells.map((c) => (/^[=+\-@\t\r]/.test(c) ? `'${c}` : c));
        // A line of one empty cell is an empty line; every other line reads back cell for cell.
        if (cells.length === 1 && cells[0] === '') return;
        expect(parseCsv(csvLine(cells))).toEqual([expected]);
      }),
      { numRuns: 300 },
    );
  });

  it('defuses text a spreadsheet would run as a formula, but not numbers', () => {
    expect(csvCell('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvCell('+31 20 123')).toBe("'+31 20 123");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell(-12)).toBe('-12');
    expect(csvCell('-')).toBe("'-");
  });
});

describe('dashboard routes (embedded mode)', () => {
  let stack: Stack;
  let server: http.Server;
  let base: string;

  const get = (path: string, merchant: string | null = 'acme', headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { headers: { ...(merchant ? { authorization: `Bearer ${stack.token(merchant)}` } : {}), ...headers }, redirect: 'manual' });
  const csv = async (path: string, merchant = 'acme') => {
    const r = await get(path, merchant);
    expect(r.status).toBe(200);
    const bytes = Buffer.from(await r.arrayBuffer());
    const text = bytes.toString('utf8');
    const rows = parseCsv(text);
    return { r, bytes, text, header: rows[0], rows: rows.slice(1), objects: rows.slice(1).map((x) => Object.fromEntries(rows[0].map((h, i) => [h, x[i]]))) };
  };

  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 60_000 } });
    stack.sim.pause();
    const t = nowS();
    const send = async (m: 'acme' | 'globex', e: unknown) => expect((await stack.sendStripe(m, e)).status).toBe(200);
    await send('acme', stripeEvents.paymentFailed({ invoice: 'in_csv1', customer: 'cus_csv1', customerName: 'Zoë "Z" de Wit, jr.', amount: 4250, number: 'INV-1', created: t - 20 * DAY, nextPaymentAttempt: null, failureCode: 'insufficient_funds' }));
    await send('acme', stripeEvents.paymentFailed({ invoice: 'in_csv2', customer: 'cus_csv2', amount: 999, created: t - 50 * DAY, nextPaymentAttempt: t - 45 * DAY, failureCode: 'generic_decline' }));
    await send('acme', stripeEvents.paymentFailed({ invoice: 'in_csv3', customer: 'cus_csv3', amount: 1500, created: t - 3 * DAY, nextPaymentAttempt: t + DAY, failureCode: 'insufficient_funds' }));
    await send('acme', stripeEvents.paid({ invoice: 'in_csv3', customer: 'cus_csv3', amount: 1500, created: t - 2 * DAY }));
    await send('globex', stripeEvents.paymentFailed({ invoice: 'in_gcsv1', customer: 'cus_gcsv1', amount: 7777, created: t - 5 * DAY, nextPaymentAttempt: null, failureCode: 'expired_card' }));
    await waitFor(async () => (await stack.get('/v1/invoices/in_csv1')).body?.case?.partnerRef, 20_000, 100, 'the case at the agency');
    await waitFor(async () => (await stack.get('/v1/invoices/in_csv3')).body?.status === 'recovered', 20_000, 100, 'in_csv3 recovered');
    await waitFor(async () => (await stack.get('/v1/invoices/in_gcsv1', 'globex')).body?.case?.partnerRef, 20_000, 100, "globex's case");
    // Text that needs quoting or defusing, as a PSP or agency could send it.
    await stack.hub.ctx.db.query(
      `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, http_status, latency_ms, summary, request, created_at) VALUES
       ('acme', 'in', 'stripe', 'invoice.note', 'ignored', 200, 3, $1, $2, now()),
       ('acme', 'in', 'stripe', 'invoice.note', 'ignored', 200, 3, $3, NULL, now())`,
      ['a "quoted", multi-line\nsummary; ünïcödé', JSON.stringify({ note: 'x,"y"' }), '=cmd|/c calc!A1'],
    );
    const app = createApp(stack.hub.ctx, [(a) => installDashboard(a, stack.hub.ctx)]);
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      server?.closeAllConnections();
    });
    await stack?.stop();
  });

  it('refuses the exports without a valid merchant token', async () => {
    for (const path of ['/v1/sync-log.csv', '/v1/reports/leakage.csv', '/v1/case-totals']) {
      expect((await get(path, null)).status).toBe(401);
      expect((await get(path, null, { authorization: 'Bearer not-a-token' })).status).toBe(401);
    }
  });

  it('exports the sync log as an attachment, newest first, row for row the same as the API', async () => {
    const { r, bytes, text, header, objects } = await csv('/v1/sync-log.csv');
    expect(r.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename="sync-log-acme-\d{4}-\d\d-\d\dT\d{6}Z\.csv"$/);
    // A UTF-8 byte-order mark first, for spreadsheet programs.
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(text.endsWith('\r\n')).toBe(true);
    expect(header).toEqual(['id', 'at', 'direction', 'party', 'operation', 'outcome', 'http_status', 'latency_ms', 'customer_id', 'invoice_id', 'case_id', 'delivery_id', 'summary']);
    const api = (await stack.get('/v1/sync-log?limit=500')).body.data;
    expect(objects.map((o) => Number(o.id))).toEqual(api.map((x: any) => x.id));
    for (const [i, x] of api.entries()) {
      expect(objects[i]).toMatchObject({ at: x.at, direction: x.direction, party: x.party, operation: x.operation, outcome: x.outcome, http_status: x.httpStatus == null ? '' : String(x.httpStatus), customer_id: x.customerId ?? '', invoice_id: x.invoiceId ?? '', case_id: x.caseId ?? '' });
    }
    // Quoting survives the round trip; a formula is defused.
    expect(objects.map((o) => o.summary)).toContain('a "quoted", multi-line\nsummary; ünïcödé');
    expect(objects.map((o) => o.summary)).toContain("'=cmd|/c calc!A1");
  });

  it('applies the sync-log filters: outcome, direction, invoice and customer (PSP or hub id), case, time range', async () => {
    const same = async (query: string) => {
      const { objects } = await csv(`/v1/sync-log.csv?${query}`);
      const api = (await stack.get(`/v1/sync-log?${query}&limit=500`)).body.data;
      expect(objects.map((o) => Number(o.id))).toEqual(api.map((x: any) => x.id));
      return objects;
    };
    expect((await same('outcome=ignored')).every((o) => o.outcome === 'ignored')).toBe(true);
    const out = await same('direction=out');
    expect(out.length).toBeGreaterThan(0);
    expect(out.every((o) => o.direction === 'out')).toBe(true);
    const inv = (await stack.get('/v1/invoices/in_csv1')).body;
    const byRef = await same('invoice=in_csv1');
    expect(byRef.length).toBeGreaterThan(0);
    expect(byRef.every((o) => o.invoice_id === inv.id)).toBe(true);
    expect((await same(`invoice=${inv.id}`)).length).toBe(byRef.length);
    const cus3 = (await stack.get('/v1/customers/cus_csv3')).body.id;
    const byCustomer = await same('customer=cus_csv3');
    expect(byCustomer.length).toBeGreaterThanOrEqual(2);
    expect(byCustomer.every((o) => o.customer_id === cus3)).toBe(true);
    expect((await same(`case=${inv.case.id}`)).every((o) => o.case_id === inv.case.id)).toBe(true);
    expect(await same('from=2100-01-01T00:00:00Z')).toEqual([]);
    expect((await same('to=2100-01-01T00:00:00Z')).length).toBeGreaterThan(5);
    // Another merchant's invoice is no filter at all for this one: nothing.
    expect(await same('invoice=in_gcsv1')).toEqual([]);
  });

  it('answers 400 for a bad filter before sending anything', async () => {
    for (const query of ['direction=sideways', 'from=yesterday', 'to=-271821-04-20T00:00:00Z', 'outcome=a&outcome=b', `customer=${'x'.repeat(300)}`, 'invoice=%00']) {
      const r = await get(`/v1/sync-log.csv?${query}`);
      expect({ query, status: r.status, type: r.headers.get('content-type') }).toEqual({ query, status: 400, type: expect.stringMatching(/^application\/json/) });
    }
    expect((await get('/v1/reports/leakage.csv?from=soon')).status).toBe(400);
  });

  it('adds the redacted payloads as JSON columns on request', async () => {
    const { header, objects } = await csv('/v1/sync-log.csv?payloads=1&outcome=ignored');
    expect(header.slice(-2)).toEqual(['request', 'response']);
    const noted = objects.find((o) => o.request.includes('x,'));
    expect(JSON.parse(noted!.request)).toEqual({ note: 'x,"y"' });
    const webhook = (await csv('/v1/sync-log.csv?payloads=1&invoice=in_csv1&direction=in')).objects[0];
    expect(JSON.parse(webhook.request)).toMatchObject({ type: 'invoice.payment_failed' });
  });

  it('pages through more rows than one query returns, in order, without repeats', async () => {
    await stack.hub.ctx.db.query(
      `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, http_status, latency_ms, summary, created_at)
       SELECT 'acme', 'out', 'refagency', 'GET /v1/updates', 'ok', 200, 5, 'bulk ' || g, now() FROM generate_series(1, 2500) g`,
    );
    const { rows } = await csv('/v1/sync-log.csv?direction=out');
    const ids = rows.map((r) => Number(r[0]));
    expect(ids.length).toBeGreaterThan(2500);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const total = await stack.hub.ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM exchanges WHERE merchant_id = 'acme' AND direction = 'out'`);
    expect(ids.length).toBe(Number(total.rows[0].n));
  });

  it("shows one merchant none of another's exchanges", async () => {
    const acme = await csv('/v1/sync-log.csv');
    const globex = await csv('/v1/sync-log.csv', 'globex');
    expect(globex.rows.length).toBeGreaterThan(0);
    const acmeIds = new Set(acme.rows.map((r) => r[0]));
    expect(globex.rows.filter((r) => acmeIds.has(r[0]))).toEqual([]);
    expect(globex.text).not.toMatch(/in_csv|cus_csv|Zoë/);
    const mine = await stack.hub.ctx.db.query<{ id: string }>(`SELECT id FROM exchanges WHERE merchant_id = 'globex' ORDER BY id DESC`);
    expect(globex.rows.map((r) => r[0])).toEqual(mine.rows.map((x) => String(x.id)));
  });

  it('exports the leakage report: one row per failed payment with its bucket, amounts in decimals', async () => {
    const { r, header, objects } = await csv('/v1/reports/leakage.csv');
    expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename="leakage-acme-.*\.csv"$/);
    expect(header).toEqual(['invoice_id', 'invoice_ref', 'provider', 'number', 'customer_id', 'bucket', 'unexplained', 'why', 'status', 'resolution', 'amount_due', 'currency', 'failure_reason', 'first_failed_at', 'handover_due_at', 'case_id', 'until']);
    const report = (await stack.get('/v1/reports/leakage')).body;
    expect(objects.map((o) => o.invoice_id)).toEqual(report.items.map((i: any) => i.invoiceId));
    const by = Object.fromEntries(objects.map((o) => [o.invoice_ref, o]));
    expect(by.in_csv1).toMatchObject({ bucket: 'in_collection', unexplained: 'no', amount_due: '42.50', currency: 'EUR', number: 'INV-1', status: 'submitted' });
    expect(by.in_csv1.case_id).toMatch(/^cse_/);
    expect(by.in_csv2).toMatchObject({ bucket: 'unexplained', unexplained: 'yes', amount_due: '9.99', why: 'the PSP said it would retry, and nothing has come for 30 days' });
    expect(by.in_csv3).toMatchObject({ bucket: 'recovered_by_psp', amount_due: '15.00', status: 'recovered' });
    expect(by.in_gcsv1).toBeUndefined();

    // The period filter, as on the report.
    const recent = await csv(`/v1/reports/leakage.csv?from=${new Date(Date.now() - 30 * DAY * 1000).toISOString()}`);
    expect(recent.objects.map((o) => o.invoice_ref).sort()).toEqual(['in_csv1', 'in_csv3']);
    const g = await csv('/v1/reports/leakage.csv', 'globex');
    expect(g.objects.map((o) => o.invoice_ref)).toEqual(['in_gcsv1']);
  });

  it('totals the cases by status and partner for the merchant only', async () => {
    const acme = (await (await get('/v1/case-totals')).json()) as any;
    expect(acme.rows).toEqual([{ status: 'submitted', partner: 'refagency', currency: 'EUR', cases: 1, principal: { value: 4250, currency: 'EUR' }, collected: { value: 0, currency: 'EUR' } }]);
    expect(acme.total).toEqual([{ currency: 'EUR', cases: 1, principal: { value: 4250, currency: 'EUR' }, collected: { value: 0, currency: 'EUR' } }]);
    const globex = (await (await get('/v1/case-totals', 'globex')).json()) as any;
    expect(globex.total).toEqual([{ currency: 'EUR', cases: 1, principal: { value: 7777, currency: 'EUR' }, collected: { value: 0, currency: 'EUR' } }]);
    expect(((await (await get('/v1/case-totals?status=paid')).json()) as any).rows).toEqual([]);
  });

  it('serves the dashboard: /dashboard redirects to /dashboard/, files with a strict CSP, no listing', async () => {
    const bare = await get('/dashboard', null);
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/dashboard/');
    const index = await get('/dashboard/', null);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    expect(index.headers.get('x-frame-options')).toBe('DENY');
    expect(await index.text()).toMatch(/<script type="module" src="js\/main.js">/);
    const js = await get('/dashboard/js/main.js', null);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect((await get('/dashboard/js/', null)).status).toBe(404);
    expect((await get('/dashboard/../package.json', null)).status).toBe(404);
    expect((await get('/dashboard/%2e%2e/%2e%2e/package.json', null)).status).toBe(404);
  });
});
