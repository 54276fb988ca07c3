/**
 * The merchant dashboard in headless Chromium (issue 5): sign in with a merchant token, see the
 * data, filter the sync log, see new entries arrive, open a customer's and an invoice's
 * timeline, retry a dead-lettered delivery, read the leakage report, download both CSVs — and
 * another merchant's token sees none of it. Writes a screenshot of each main page to
 * docs/screenshots/.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page, Request } from 'playwright-core';
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { createApp } from '../../src/http/app';
import { installDashboard } from '../../src/dashboard';
import { parseCsv } from '../../src/dashboard/csv';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { seedDashboardData, type Seeded } from './seed';
import { browserSuite, launchBrowser, serve, SCREENSHOTS, type BrowserSession } from './browser';

// Functions given to page.evaluate run in the page: these name its globals for the type checker.
declare const document: any, location: any, sessionStorage: any, localStorage: any, window: any;
type HTMLElement = any;

const suite = browserSuite();
jest.setTimeout(60_000);

suite.describe('merchant dashboard in Chromium', () => {
  let stack: Stack;
  let seeded: Seeded;
  let web: { url: string; close(): Promise<void> };
  let browser: BrowserSession;
  let page: Page;
  const apiCalls: { url: string; auth: string | undefined }[] = [];
  const pageErrors: string[] = [];
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    if (suite.missing) throw new Error(suite.missing);
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 50 } });
    seeded = await seedDashboardData(stack);
    for (const ref of ['in_anna1', 'in_carl1', 'in_carl2', 'in_eve1', 'in_dora1', 'in_bob1']) {
      const inv = (await stack.get(`/v1/invoices/${ref}`)).body;
      ids[ref] = inv.id;
      ids[ref.replace(/^in_(\w+?)\d$/, 'cus_$1')] = inv.customerId;
    }
    web = await serve(createApp(stack.hub.ctx, [(app) => installDashboard(app, stack.hub.ctx)]));
    browser = await launchBrowser();
    page = await browser.context.newPage();
    watch(page);
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await seeded?.stop();
    await stack?.stop();
  }, 30_000);

  function watch(p: Page) {
    p.setDefaultTimeout(10_000);
    p.on('request', (r: Request) => {
      if (new URL(r.url()).pathname.startsWith('/v1/')) apiCalls.push({ url: r.url(), auth: r.headers()['authorization'] });
    });
    p.on('pageerror', (err) => pageErrors.push(err.message));
    p.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Uncaught/i.test(m.text())) pageErrors.push(m.text());
    });
  }

  const shot = (name: string, p: Page = page) => p.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  const text = (selector: string, p: Page = page) => p.locator(selector).first().innerText();
  async function go(hash: string, ready: string, p: Page = page) {
    await p.evaluate((h) => {
      if (location.hash === h) location.reload();
      else location.hash = h;
    }, hash);
    await p.waitForSelector(ready);
  }
  async function logRows(p: Page = page) {
    return p.$$eval('table.log tr.entry', (rows) => rows.map((r) => ({ id: Number((r as HTMLElement).dataset.id), outcome: (r as HTMLElement).dataset.outcome, direction: (r as HTMLElement).dataset.direction, text: (r as HTMLElement).innerText })));
  }

  it('refuses a bad token, then signs in with the merchant token and shows the overview', async () => {
    await page.goto(`${web.url}/dashboard`);
    await page.waitForSelector('form.signin');
    expect(new URL(page.url()).pathname).toBe('/dashboard/');
    await shot('sign-in');

    await page.fill('#token', 'not-a-token');
    await page.click('form.signin button[type=submit]');
    await page.waitForFunction(() => (document.querySelector('.form-error')?.textContent ?? '').length > 0);
    expect(await text('.form-error')).toMatch(/not accepted/);

    await page.fill('#token', stack.token('acme'));
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('[data-stat="failed"]');
    expect(await text('.who-name')).toBe('Acme Subscriptions BV');
    expect(await text('[data-stat="failed"] .stat-value')).toBe('6');
    expect(await text('[data-stat="unexplained"] .stat-value')).toBe('1');
    expect(await text('[data-stat="dead"] .stat-value')).toBe('1');
    expect(await text('[data-role="attention"]')).toMatch(/1 unexplained[\s\S]*1 dead-lettered/);
    // Both charts drawn: bars for the statuses, stacked segments per failure reason.
    expect(await page.locator('svg.chart').count()).toBe(2);
    expect(await page.locator('svg.chart g.bar').count()).toBeGreaterThanOrEqual(5);
    expect(await page.locator('svg.chart rect.segment').count()).toBeGreaterThanOrEqual(3);
    // The token is in this tab's sessionStorage, nowhere else.
    const storage = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: localStorage.length, cookie: document.cookie }));
    expect(storage).toEqual({ session: ['collection-hub.merchant-token'], local: 0, cookie: '' });
    await shot('overview');
  });

  it('shows the sync log newest first, opens a payload, filters by outcome and by invoice', async () => {
    await go('#/log', 'table.log tr.entry');
    const rows = await logRows();
    expect(rows.length).toBeGreaterThan(15);
    expect(rows.map((r) => r.id)).toEqual([...rows.map((r) => r.id)].sort((a, b) => b - a));
    const api = await stack.get('/v1/sync-log?limit=1');
    expect(rows[0].id).toBe(api.body.data[0].id);
    // Every outcome the seed produced is there, coloured by outcome.
    expect([...new Set(rows.map((r) => r.outcome))]).toEqual(expect.arrayContaining(['ok', 'duplicate', 'ignored', 'dead']));
    expect(await page.locator('tr.entry[data-outcome="dead"] .badge.tone-red').count()).toBe(1);

    // A row opens to show the payload the hub received (Stripe's event, as stored).
    const inbound = page.locator('tr.entry[data-direction="in"][data-outcome="ok"]', { hasText: 'invoice.payment_failed' }).first();
    const id = await inbound.getAttribute('data-id');
    await inbound.click();
    const detail = page.locator(`tr.detail[data-detail-for="${id}"]`);
    await detail.waitFor({ state: 'visible' });
    expect(await detail.locator('pre.json').first().innerText()).toMatch(/"type": "invoice.payment_failed"/);
    await shot('sync-log');
    await inbound.click();
    await detail.waitFor({ state: 'hidden' });

    // Filter by outcome.
    await page.selectOption('form.filters select[name=outcome]', 'dead');
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('outcome=dead') && document.querySelectorAll('table.log tr.entry').length > 0);
    const dead = await logRows();
    expect(dead.length).toBe(1);
    expect(dead[0]).toMatchObject({ outcome: 'dead', direction: 'out' });
    expect(dead[0].text).toMatch(/POST \/v1\/cases/);
    expect(dead[0].text).toMatch(/401/);

    // Filter by invoice (the PSP's id), outcome cleared.
    await page.selectOption('form.filters select[name=outcome]', '');
    await page.fill('form.filters input[name=invoice]', 'in_carl2');
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('invoice=in_carl2') && !location.hash.includes('outcome'));
    await page.waitForSelector('table.log tr.entry');
    const carl2 = await logRows();
    const expected = (await stack.get('/v1/sync-log?invoice=in_carl2')).body.data.map((x: any) => x.id);
    expect(carl2.map((r) => r.id)).toEqual(expected);
    expect(carl2.length).toBeGreaterThanOrEqual(2);
    for (const r of carl2) expect(r.text).toContain(ids.in_carl2);
    expect(await text('.chips')).toMatch(/invoice: in_carl2/);
  });

  it('shows new entries without a reload (polling after the newest id)', async () => {
    await go('#/log', 'table.log tr.entry');
    await page.evaluate(() => {
      (window as any).__sameDocument = true;
    });
    const before = await logRows();
    const r = await stack.sendStripe('acme', stripeEvents.other('customer.updated', Math.floor(Date.now() / 1000)));
    expect(r.status).toBe(200);
    await page.waitForFunction((top) => Number((document.querySelector('table.log tr.entry') as HTMLElement | null)?.dataset.id) > top, before[0].id, { timeout: 10_000 });
    const after = await logRows();
    expect(after[0].text).toMatch(/customer\.updated/);
    expect(after.length).toBeGreaterThanOrEqual(before.length + 1);
    expect(await page.locator('table.log tr.entry.fresh').count()).toBeGreaterThanOrEqual(1);
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  });

  it("opens a customer's page with the whole timeline, and an invoice's", async () => {
    await page.fill('form.search input', 'cus_carl');
    await page.press('form.search input', 'Enter');
    await page.waitForSelector('h1[data-customer="cus_carl"]');
    expect(await text('h1')).toBe('Carl Jansen');
    expect(await text('[data-stat="open"] .stat-value')).toBe('€155.00');
    expect(await page.locator('tr[data-invoice="in_carl1"]').count()).toBe(1);
    expect(await page.locator('tr[data-invoice="in_carl2"]').count()).toBe(1);
    // One person at two Stripe customers, joined by acme's own customer id (issue 12, hole 3).
    expect(await text('[data-merchant-ref]')).toBe('CRM-CARL');
    expect(await page.$$eval('tr[data-identity]', (tr) => tr.map((x) => (x as HTMLElement).dataset.identity).sort())).toEqual(['stripe:cus_carl', 'stripe:cus_carlweb']);
    expect(await page.locator('tr[data-invoice="in_carlweb1"]').count()).toBe(1);
    // The payment-behaviour card: Carl is in collection now, and the flag says why (issue 17).
    expect(await text('[data-flag="in_collection_now"]')).toMatch(/^in collection now In collection now with refagency: 1 live case \(cse_\w+ [a-z ]+\), €?(EUR )?155\.00 open\.$/);
    const timeline = await page.$$eval('ol.timeline li', (li) => li.map((x) => `${(x as HTMLElement).dataset.entity}:${(x as HTMLElement).dataset.status}`));
    expect(timeline).toEqual(expect.arrayContaining(['invoice:payment_failed', 'invoice:pending_handover', 'case:submitted', 'invoice:submitted', 'case:in_collection', 'claim:in_collection', 'invoice:in_collection']));
    await shot('customer');

    // From the customer to the invoice, and back.
    await page.click('tr[data-invoice="in_carl1"] td:first-child a');
    await page.waitForSelector('h1[data-invoice="in_carl1"]');
    expect(await text('h1')).toMatch(/ACME-1002[\s\S]*in collection/);
    expect(await text('[data-stat="due"] .stat-value')).toBe('€120.00');
    await page.click('.page-tools a:has-text("Customer")');
    await page.waitForSelector('h1[data-customer="cus_carl"]');

    // A resolved invoice: paid by the agency, with its reason, and collected = due.
    await go('#/invoices/in_anna1', 'h1[data-invoice="in_anna1"]');
    expect(await text('[data-role="resolution"]')).toBe('paid in full');
    expect(await text('[data-stat="collected"] .stat-value')).toBe('€49.00');
    expect(await text('[data-stat="open"] .stat-value')).toBe('€0.00');
    const annaTimeline = await page.$$eval('ol.timeline li', (li) => li.map((x) => `${(x as HTMLElement).dataset.entity}:${(x as HTMLElement).dataset.status}`));
    expect(annaTimeline[0]).toBe('invoice:payment_failed');
    expect(annaTimeline).toEqual(expect.arrayContaining(['invoice:submitted', 'invoice:in_collection', 'claim:paid', 'invoice:paid']));
    await shot('invoice');
  });

  it('lists cases by status and partner with totals, and filters them', async () => {
    await go('#/cases', 'tr[data-case]');
    expect(await text('[data-role="grand-total"]')).toMatch(/^3 cases · €293\.00 handed over · €49\.00 collected/);
    expect(await text('tr[data-total="in_collection"]')).toMatch(/1[\s\S]*€155\.00[\s\S]*€0\.00[\s\S]*€155\.00/);
    expect(await text('tr[data-total="paid"]')).toMatch(/1[\s\S]*€49\.00[\s\S]*€49\.00/);
    expect(await text('tr[data-total="refagency"]')).toMatch(/3[\s\S]*€293\.00/);
    expect(await page.locator('tr[data-case]').count()).toBe(3);
    await shot('cases');
    await page.click('tr[data-total="paid"] a');
    await page.waitForFunction(() => location.hash.includes('status=paid'));
    await page.waitForFunction(() => document.querySelectorAll('tr[data-case]').length === 1);
    expect(await page.getAttribute('tr[data-case]', 'data-status')).toBe('paid');
  });

  it('retries a dead-lettered delivery from the page and shows the outcome', async () => {
    await go('#/deliveries', `[data-delivery="${seeded.deadDeliveryId}"]`);
    expect(await text(`.delivery[data-delivery="${seeded.deadDeliveryId}"]`)).toMatch(/HTTP 401[\s\S]*invalid_signature/);

    // The agency still refuses the hub's token: the retry dead-letters again, and the page says so.
    await page.click(`button[data-action="retry"][data-delivery="${seeded.deadDeliveryId}"]`);
    await page.waitForSelector('[data-role="retry-outcome"][data-tone="red"]', { timeout: 20_000 });
    expect(await text('[data-role="retry-outcome"]')).toMatch(/401/);

    // Fixed: the hub's calls reach an agency that knows its secret again. Retry delivers.
    seeded.useAgency('good');
    await page.click(`button[data-action="retry"][data-delivery="${seeded.deadDeliveryId}"]`);
    await page.waitForSelector('[data-role="retry-outcome"][data-tone="green"]', { timeout: 20_000 });
    expect(await text('[data-role="retry-outcome"]')).toMatch(/POST \/v1\/cases → HTTP 201/);
    await shot('deliveries');
    expect(seeded.good.cases().map((c) => c.debtor.name)).toContain('Dora Bakker');
    expect((await stack.get('/v1/deliveries?status=dead')).body.data).toEqual([]);
    await waitFor(async () => (await stack.get('/v1/invoices/in_dora1')).body.case?.partnerRef, 10_000, 100, "dora's case accepted");

    await go('#/deliveries', '[data-role="empty"]');
    expect(await text('[data-role="empty"]')).toMatch(/Nothing in the dead letter/);
  });

  it('shows the leakage report: totals per bucket and the unexplained failure highlighted', async () => {
    await go('#/leakage', '[data-role="headline"]');
    expect(await text('[data-role="headline"]')).toMatch(/1 of 6 failed payments unexplained — €75\.00/);
    const counts = await page.$$eval('a.bucket', (els) => Object.fromEntries(els.map((e) => [(e as HTMLElement).dataset.bucket, Number((e as HTMLElement).dataset.count)])));
    expect(counts).toMatchObject({ recovered_by_psp: 1, collected: 1, in_collection: 3, unexplained: 1, pending_handover: 0, written_off: 0 });
    const unexplained = page.locator('[data-role="unexplained"]');
    expect(await unexplained.locator('tr[data-invoice]').count()).toBe(1);
    expect(await unexplained.innerText()).toMatch(/ACME-0977[\s\S]*€75\.00[\s\S]*nothing has come for 30 days/);
    expect(await page.locator('tr.row-alert[data-invoice="in_eve1"]').count()).toBe(1);
    expect(await page.locator('svg.chart rect.segment').count()).toBeGreaterThanOrEqual(3);
    await shot('leakage');
    // A bucket narrows the list.
    await page.click('a.bucket[data-bucket="in_collection"]');
    await page.waitForFunction(() => location.hash.includes('bucket=in_collection'));
    await page.waitForSelector('a.bucket.current[data-bucket="in_collection"]');
    const buckets = await page.$$eval('table.items tr[data-bucket]', (rows) => rows.map((r) => (r as HTMLElement).dataset.bucket));
    expect(buckets).toEqual(['in_collection', 'in_collection', 'in_collection']);
  });

  it('downloads the sync log (with the current filters) and the leakage report as CSV', async () => {
    await go('#/log?direction=out', 'table.log tr.entry');
    const [logDownload] = await Promise.all([page.waitForEvent('download'), page.click('button[data-action="export-log"]')]);
    expect(logDownload.suggestedFilename()).toMatch(/^sync-log-acme-.*\.csv$/);
    const logCsv = parseCsv(fs.readFileSync((await logDownload.path())!, 'utf8'));
    expect(logCsv[0].slice(0, 6)).toEqual(['id', 'at', 'direction', 'party', 'operation', 'outcome']);
    const outbound = (await stack.get('/v1/sync-log?direction=out&limit=500')).body.data;
    expect(logCsv.slice(1).map((r) => Number(r[0]))).toEqual(outbound.map((x: any) => x.id));
    expect(new Set(logCsv.slice(1).map((r) => r[2]))).toEqual(new Set(['out']));
    expect(logCsv.slice(1).map((r) => r[5])).toEqual(expect.arrayContaining(['ok', 'dead']));
    await page.waitForFunction(() => /Downloaded sync-log-acme/.test(document.querySelector('[data-role="export-status"]')?.textContent ?? ''));

    await go('#/leakage', '[data-role="headline"]');
    const [leakDownload] = await Promise.all([page.waitForEvent('download'), page.click('button[data-action="export-leakage"]')]);
    expect(leakDownload.suggestedFilename()).toMatch(/^leakage-acme-.*\.csv$/);
    const leak = parseCsv(fs.readFileSync((await leakDownload.path())!, 'utf8'));
    const header = leak[0];
    const rows = leak.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
    expect(rows).toHaveLength(6);
    expect(rows.find((r) => r.invoice_ref === 'in_eve1')).toMatchObject({ bucket: 'unexplained', unexplained: 'yes', amount_due: '75.00', currency: 'EUR', why: 'the PSP said it would retry, and nothing has come for 30 days' });
    expect(rows.find((r) => r.invoice_ref === 'in_anna1')).toMatchObject({ bucket: 'collected', unexplained: 'no', status: 'paid', resolution: 'paid_in_full', amount_due: '49.00' });
    expect(rows.find((r) => r.invoice_ref === 'in_bob1')).toMatchObject({ bucket: 'recovered_by_psp', amount_due: '19.99' });
  });

  it("sends the merchant's token on every API call", () => {
    expect(apiCalls.length).toBeGreaterThan(20);
    const token = `Bearer ${stack.token('acme')}`.slice(0, 30);
    // Every call of the acme tab carries a bearer token (the invalid one at first sign-in, then acme's).
    for (const c of apiCalls) expect(c.auth).toMatch(/^Bearer \S+$/);
    expect(apiCalls.filter((c) => c.auth!.startsWith(token)).length).toBeGreaterThan(20);
  });

  it("signed in as another merchant, shows none of acme's data", async () => {
    const other = await browser.context.newPage();
    watch(other);
    try {
      await other.goto(`${web.url}/dashboard/`);
      await other.waitForSelector('form.signin');
      await other.fill('#token', stack.token('globex'));
      await other.click('form.signin button[type=submit]');
      await other.waitForSelector('[data-stat="failed"]');
      expect(await text('.who-name', other)).toBe('Globex GmbH');
      expect(await text('[data-stat="failed"] .stat-value', other)).toBe('1');
      const acmeMarks = ['Acme', 'cus_anna', 'cus_carl', 'in_eve1', 'ACME-', ...Object.values(ids)];
      const seen: string[] = [];
      for (const [hash, ready] of [
        ['#/overview', '[data-stat="failed"]'],
        ['#/log', 'table.log tr.entry'],
        ['#/cases', 'tr[data-case]'],
        ['#/deliveries', '[data-role="empty"]'],
        ['#/leakage', '[data-role="headline"]'],
      ]) {
        await go(hash, ready, other);
        const body = await other.locator('body').innerText();
        for (const m of acmeMarks) if (body.includes(m)) seen.push(`${hash}: ${m}`);
      }
      expect(seen).toEqual([]);
      // Globex sees its own: one case, its log entries only.
      await go('#/cases', 'tr[data-case]', other);
      expect(await other.locator('tr[data-case]').count()).toBe(1);
      // An acme customer or invoice by id: not found, no data.
      await go('#/customers/cus_carl', '.alert-error', other);
      expect(await text('.alert-error', other)).toMatch(/Not found for this merchant/);
      await go(`#/invoices/${ids.in_anna1}`, '.alert-error', other);
      expect(await other.locator('body').innerText()).not.toMatch(/Anna|ACME-1001/);

      // Paging: 120 more globex entries; the first page shows 50, "Load older" the next 50, in order.
      await stack.hub.ctx.db.query(
        `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, http_status, latency_ms, summary, created_at)
         SELECT 'globex', 'in', 'stripe', 'invoice.upcoming', 'ignored', 200, 1, 'paging ' || g, now() FROM generate_series(1, 120) g`,
      );
      await go('#/overview', '[data-stat="failed"]', other);
      await go('#/log', 'table.log tr.entry', other);
      expect(await other.locator('table.log tr.entry').count()).toBe(50);
      await other.click('.table-foot button:has-text("Load older")');
      await other.waitForFunction(() => document.querySelectorAll('table.log tr.entry').length === 100);
      const paged = await logRows(other);
      expect(new Set(paged.map((r) => r.id)).size).toBe(100);
      expect(paged.map((r) => r.id)).toEqual([...paged.map((r) => r.id)].sort((a, b) => b - a));

      // Signing out forgets the token.
      await other.click('button:has-text("Sign out")');
      await other.waitForSelector('form.signin');
      expect(await other.evaluate(() => sessionStorage.length)).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('raised no script errors and no Content-Security-Policy violations', () => {
    expect(pageErrors).toEqual([]);
  });
});
