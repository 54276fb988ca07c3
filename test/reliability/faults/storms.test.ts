/**
 * Guarantee 5 — duplicate and out-of-order storms, in both run modes. Two runs of one story:
 * a control run (every PSP event once, every agency update pushed once and in order) and a storm
 * run (every PSP event 20 times at once; every agency push delivered twice, shuffled in batches
 * of random size, then the whole update feed pulled once more on top). The end state — invoices,
 * claims and cases with their statuses and amounts, and the number of cases — must be the same.
 */
import { createPglite } from '../../../src/store/pglite';
import type { Database } from '../../../src/store/db';
import type { AgencySimulator } from '../../../sim/agency-sim/simulator';
import type { ControlEvent } from '../../../sim/agency-sim/schemas';
import { postgresAvailable, redisAvailable, waitFor } from '../../support/services';
import {
  failedInvoices, freePort, openServices, paymentFailedEvent, Psp, readAgencyBooks, startHub, startSim, waitForAgency, waitForOutboxSettled,
  type FailedInvoice, type InProcessHub, type Services,
} from './harness';
import { recordFigures } from './figures';

type Mode = 'embedded' | 'services';
const COPIES = 20;

interface RunResult {
  state: unknown;
  figures: Record<string, unknown>;
}

/** The agency's side of the story for one case: a script of updates (control calls). */
function script(kind: number, claims: { reference: string; principal: number }[], currency: string): (ControlEvent & { claimReference?: string | null })[] {
  const total = claims.reduce((a, c) => a + c.principal, 0);
  const money = (value: number) => ({ value, currency });
  switch (kind) {
    case 0: // collected in two steps, claim by claim
      return [
        { status: 'in_collection' },
        ...claims.flatMap((c) => [
          { status: 'partially_paid' as const, claimReference: c.reference, amountCollected: money(Math.floor(c.principal * 0.4)) },
          { status: 'paid' as const, claimReference: c.reference, reason: 'paid_in_full' as const, amountCollected: money(c.principal) },
        ]),
      ];
    case 1: // an arrangement, then paid through it
      return [
        { status: 'in_collection' },
        { status: 'arrangement', arrangement: { installments: 3, amount: money(Math.ceil(total / 3)), firstDueAt: '2030-01-01T00:00:00Z' } },
        ...claims.map((c) => ({ status: 'paid' as const, claimReference: c.reference, reason: 'paid_via_arrangement' as const, amountCollected: money(c.principal) })),
      ];
    case 2: // half collected, the rest written off
      return [
        { status: 'in_collection' },
        ...claims.map((c) => ({ status: 'partially_paid' as const, claimReference: c.reference, amountCollected: money(Math.floor(c.principal / 2)) })),
        ...claims.map((c) => ({ status: 'uncollectible' as const, claimReference: c.reference, reason: 'written_off' as const, amountCollected: money(Math.floor(c.principal / 2)) })),
      ];
    default: // disputed, then closed
      return [{ status: 'in_collection' }, { status: 'disputed', note: 'the debtor disputes' }, { status: 'closed', reason: 'disputed_upheld' }];
  }
}

describe.each<Mode>(['embedded', 'services'])('duplicate and out-of-order storms (%s mode)', (mode) => {
  let available = true;
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    available = mode === 'embedded' || ((await postgresAvailable()) && (await redisAvailable()));
  }, 30_000);
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }, 60_000);

  async function run(storm: boolean, invoices: FailedInvoice[], later: FailedInvoice[]): Promise<RunResult> {
    const hubPort = await freePort();
    const { sim } = await startSim(hubPort, storm ? { duplicateRate: 1, outOfOrder: true, pushBatch: 4, seed: 11 } : { seed: 11 });
    let db: Database | undefined;
    let services: Services | undefined;
    if (mode === 'embedded') db = await createPglite();
    else services = await openServices();
    const hub: InProcessHub = await startHub({
      hubPort, partnerUrl: sim.url!, db, databaseUrl: services?.databaseUrl, redisUrl: services?.redisUrl, queuePrefix: services?.prefix,
    });
    cleanups.push(async () => {
      await sim.stop();
      await hub.stop();
      await db?.close();
      await services?.cleanup();
    });
    // Cases wait for the control calls below.
    sim.setScenario(null, 'manual');
    const psp = new Psp(() => hub.url!);
    const send = async (list: FailedInvoice[]) => {
      for (const f of list) {
        const ev = paymentFailedEvent(f);
        // Storm: the same event 20 times at once (same id, each signed afresh, as a PSP retrying in a hurry).
        await Promise.all(Array.from({ length: storm ? COPIES : 1 }, () => psp.deliver(ev)));
      }
    };
    await send(invoices);
    await waitForAgency(sim, invoices, 30_000);
    // Second invoices of some customers once their case is at the agency: stacked onto it.
    await send(later);
    await waitForAgency(sim, [...invoices, ...later], 30_000);

    // The agency's story, case by case, all at once (so the storm's shuffle mixes cases and steps).
    const customers = [...new Set(invoices.map((f) => f.customer))].sort();
    for (const c of sim.cases()) {
      const kind = customers.indexOf(c.debtor.name) % 4;
      for (const ev of script(kind, c.claims.map((k) => ({ reference: k.reference, principal: k.principal.value })), c.claims[0].principal.currency)) sim.emit(c.id, ev);
    }
    const emitted = sim.updates().length;
    await sim.pushesSettled();
    // Storm: then the whole feed once more by pull (every update replayed; after the shuffled
    // pushes, so the pull's in-order copy cannot get there first and hide the shuffle).
    if (storm) await hub.hub.pullNow();
    await waitFor(async () => {
      const r = await hub.hub.ctx.db.query<{ n: number; open: number }>(`SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'received')::int AS open FROM partner_updates`);
      return r.rows[0].n === emitted && r.rows[0].open === 0;
    }, 30_000, 100, 'every agency update stored and applied');
    const owed = await waitForOutboxSettled(hub.hub.ctx.db, 20_000);
    expect(owed).toEqual([]);

    const q = async <T>(text: string) => (await hub.hub.ctx.db.query<T>(text)).rows;
    const state = {
      invoices: await q(`SELECT provider_ref, status, resolution, amount_due::int, amount_paid::int, amount_collected::int FROM invoices ORDER BY provider_ref`),
      claims: await q(`SELECT i.provider_ref AS invoice, k.status, k.resolution, k.principal::int, k.amount_collected::int FROM claims k JOIN invoices i ON i.id = k.invoice_id ORDER BY i.provider_ref`),
      cases: await q(`SELECT cu.provider_ref AS customer, c.status, c.resolution, (SELECT count(*)::int FROM claims k WHERE k.case_id = c.id) AS claims FROM cases c JOIN customers cu ON cu.id = c.customer_id ORDER BY cu.provider_ref`),
      events: await q(`SELECT count(*)::int AS stored, sum(deliveries)::int AS delivered, count(*) FILTER (WHERE status = 'processed')::int AS processed FROM inbound_events`),
    };
    const updates = (await q<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM partner_updates GROUP BY status ORDER BY status`));
    const pushes = sim.pushes();
    const books = readAgencyBooks(sim, [...invoices, ...later]);
    return {
      state,
      figures: {
        pspDeliveries: psp.stats.deliveries, answers: psp.stats.answers, agencyUpdates: emitted,
        pushes: pushes.length, duplicatePushes: pushes.filter((p) => p.duplicate).length,
        updatesByOutcome: Object.fromEntries(updates.map((u) => [u.status, u.n])),
        agencyCases: books.cases, agencyClaims: books.claims, keysActedTwice: books.keysActedTwice.length,
      },
    };
  }

  it('ends in the same state as one in-order delivery', async () => {
    if (!available) return;
    const tag = `s${mode[0]}${Date.now().toString(36)}`;
    const invoices = failedInvoices({ tag, customers: 8, twoInvoices: 0, threeInvoices: 0, seed: 3 }).sort((a, b) => a.customer.localeCompare(b.customer));
    const later = invoices.slice(0, 3).map((f) => ({ ...f, invoice: `${f.invoice}b`, amount: f.amount + 111, facts: { ...f.facts, invoice: `${f.invoice}b`, number: `${f.invoice}b`, amount: f.amount + 111, created: f.facts.created + 10 } }));

    const control = await run(false, invoices, later);
    const storm = await run(true, invoices, later);

    const { events: stormEvents, ...stormState } = storm.state as any;
    const { events: _controlEvents, ...controlState } = control.state as any;
    recordFigures(`5-storms-${mode}`, {
      events: invoices.length + later.length, copiesPerEventInStorm: COPIES, control: control.figures, storm: storm.figures,
      endStateRows: controlState.invoices.length + controlState.claims.length + controlState.cases.length,
      rowsDifferent: (['invoices', 'claims', 'cases'] as const).reduce(
        (n, k) => n + controlState[k].filter((row: unknown, i: number) => JSON.stringify(row) !== JSON.stringify(stormState[k][i])).length + Math.abs(controlState[k].length - stormState[k].length),
        0,
      ),
      sameEndState: JSON.stringify(controlState) === JSON.stringify(stormState),
    });
    const sc = storm.figures as any;
    // The storm happened: every event 20 times, answered 2xx every time; pushes doubled; stale replays refused.
    expect(sc.answers).toEqual({ '200': (invoices.length + later.length) * COPIES });
    expect(sc.duplicatePushes).toBeGreaterThan(0);
    expect(sc.keysActedTwice).toBe(0);
    // Stored once, processed once: 20 deliveries of each, one row each.
    expect(stormEvents).toEqual([{ stored: invoices.length + later.length, delivered: (invoices.length + later.length) * COPIES, processed: invoices.length + later.length }]);
    // The end state equals the control run's, row for row.
    expect(stormState).toEqual(controlState);
    expect(controlState.cases).toHaveLength(8);
    // The story really moved the books (not an empty comparison).
    expect(controlState.claims.map((c: any) => c.status).sort()).toEqual(expect.arrayContaining(['paid', 'uncollectible', 'closed']));
  }, 180_000);
});
