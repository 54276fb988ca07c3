/**
 * Agency updates never move a status backwards in time (contract §4): ordered by occurredAt,
 * then by the agency's seq; older updates are logged as stale and not applied. Case-level
 * updates (claimReference null) reach the open claims; one agency never touches another's case.
 */
import { isNewer, applyPartnerUpdate } from '../../src/sync/partner-updates';
import { createPglite } from '../../src/store/pglite';
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { makeCommit, type HubContext } from '../../src/context';
import type { OutboxRow } from '../../src/outbox/outbox';
import type { AgencyUpdate } from '../../src/domain/types';
import { ManualClock, DAY_MS } from '../../src/domain/clock';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import type { Dispatcher } from '../../src/queue/dispatcher';

const T = new Date('2026-04-01T08:00:00.000Z');
const t = (days: number, ms = 0) => new Date(T.getTime() + days * DAY_MS + ms).toISOString();

describe('isNewer (occurredAt, then seq)', () => {
  const last = { at: new Date('2026-04-02T00:00:00.000Z'), seq: 5 };
  it.each([
    ['an older time loses, even with a higher seq', { occurredAt: '2026-04-01T23:59:59.999Z', seq: 99 }, last, false],
    ['the same time with a lower seq loses', { occurredAt: '2026-04-02T00:00:00.000Z', seq: 4 }, last, false],
    ['the same time with the same seq loses (a replay)', { occurredAt: '2026-04-02T00:00:00.000Z', seq: 5 }, last, false],
    ['the same time with a higher seq wins', { occurredAt: '2026-04-02T00:00:00.000Z', seq: 6 }, last, true],
    ['a newer time with a lower seq wins', { occurredAt: '2026-04-02T00:00:00.001Z', seq: 1 }, last, true],
    ['anything wins when there is no previous state', { occurredAt: '2000-01-01T00:00:00.000Z', seq: 0 }, { at: null, seq: null }, true],
    ['the same time wins when the previous state has no seq', { occurredAt: '2026-04-02T00:00:00.000Z', seq: 0 }, { at: last.at, seq: null }, true],
    ['the same instant written with an offset is the same time', { occurredAt: '2026-04-02T02:00:00+02:00', seq: 5 }, last, false],
  ])('%s', (_name, u, prev, expected) => {
    expect(isNewer(u, prev)).toBe(expected);
  });

  it('compares seq as a number when the database hands it back as a string (bigint)', () => {
    expect(isNewer({ occurredAt: last.at.toISOString(), seq: 10 }, { at: last.at, seq: '9' as unknown as number })).toBe(true);
    expect(isNewer({ occurredAt: last.at.toISOString(), seq: 9 }, { at: last.at, seq: '10' as unknown as number })).toBe(false);
  });
});

describe('applyPartnerUpdate through the database', () => {
  let db: Database;
  let ctx: HubContext;
  const clock = new ManualClock(new Date('2026-05-01T00:00:00.000Z').getTime());

  beforeAll(async () => {
    db = await createPglite();
    await migrate(db);
    const dispatcher = { kind: 'in-process', dispatch: async () => undefined } as unknown as Dispatcher;
    ctx = {
      db,
      clock,
      logger: createLogger({ silent: true }),
      metrics: createMetrics(),
      commit: makeCommit(db, dispatcher, clock),
    } as unknown as HubContext;
  });
  afterAll(async () => {
    await db.close();
  });

  let n = 0;
  interface Seeded {
    tag: string;
    caseId: string;
    partnerRef: string;
    claimIds: string[];
    invoiceIds: string[];
  }

  /** A customer with `claims` invoices, each a claim on one submitted case at `partnerId`. */
  async function seedCase(opts: { claims?: number; partnerId?: string } = {}): Promise<Seeded> {
    n++;
    const tag = `U${n}`;
    const partnerId = opts.partnerId ?? 'refagency';
    const at = new Date('2026-03-01T00:00:00.000Z');
    const s: Seeded = { tag, caseId: `cse_${tag}`, partnerRef: `AG-${tag}`, claimIds: [], invoiceIds: [] };
    await db.query(`INSERT INTO customers (id, merchant_id, provider, provider_ref, name, type) VALUES ($1,'acme','stripe',$2,'Jan','consumer')`, [`cust_${tag}`, `cus_${tag}`]);
    await db.query(
      `INSERT INTO cases (id, merchant_id, customer_id, partner_id, partner_ref, status, currency, opened_at, last_claim_at) VALUES ($1,'acme',$2,$3,$4,'submitted','EUR',$5,$5)`,
      [s.caseId, `cust_${tag}`, partnerId, s.partnerRef, at],
    );
    for (let i = 0; i < (opts.claims ?? 1); i++) {
      const inv = `inv_${tag}_${i}`;
      const clm = `clm_${tag}_${i}`;
      await db.query(
        `INSERT INTO invoices (id, merchant_id, customer_id, provider, provider_ref, currency, amount_due, status, case_id, failure_final, failure_count, first_failed_at)
         VALUES ($1,'acme',$2,'stripe',$3,'EUR',4900,'submitted',$4,true,1,$5)`,
        [inv, `cust_${tag}`, `in_${tag}_${i}`, s.caseId, at],
      );
      await db.query(
        `INSERT INTO claims (id, case_id, invoice_id, merchant_id, principal, currency, status, sent_at) VALUES ($1,$2,$3,'acme',4900,'EUR','submitted',$4)`,
        [clm, s.caseId, inv, at],
      );
      s.invoiceIds.push(inv);
      s.claimIds.push(clm);
    }
    return s;
  }

  let u = 0;
  function update(s: Seeded, over: Partial<AgencyUpdate> & Pick<AgencyUpdate, 'status' | 'occurredAt' | 'seq'>): AgencyUpdate {
    u++;
    return { id: `upd_${s.tag}_${u}`, caseId: s.partnerRef, caseReference: s.caseId, claimReference: s.claimIds[0], ...over };
  }

  /** Store the update as push would, owe its application, and run the apply_update row. Returns the update's stored status. */
  async function deliver(upd: AgencyUpdate, partnerId = 'refagency'): Promise<string> {
    const stored = (await db.query<{ id: number }>(
      `INSERT INTO partner_updates (partner_id, update_id, via, payload) VALUES ($1,$2,'push',$3) RETURNING id`,
      [partnerId, upd.id, JSON.stringify(upd)],
    )).rows[0];
    const row = (await db.query<OutboxRow<'apply_update'>>(
      `INSERT INTO outbox (kind, lane, payload, idempotency_key, status) VALUES ('apply_update','hub',$1,$2,'in_flight') RETURNING *`,
      [JSON.stringify({ partnerUpdateId: stored.id }), `update-${partnerId}-${upd.id}`],
    )).rows[0];
    await applyPartnerUpdate(ctx, row);
    const out = (await db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [row.id])).rows[0];
    expect(out.status).toBe('done');
    return (await db.query<{ status: string }>(`SELECT status FROM partner_updates WHERE id = $1`, [stored.id])).rows[0].status;
  }

  // amount_collected is a bigint: PGlite answers a number, pg a string; compare as numbers.
  const row = async (table: 'claims' | 'invoices', id: string) => {
    const r = (await db.query<{ status: string; resolution: string | null; amount_collected: string | number }>(`SELECT status, resolution, amount_collected FROM ${table} WHERE id = $1`, [id])).rows[0];
    return { status: r.status, resolution: r.resolution, amount_collected: Number(r.amount_collected) };
  };
  const claim = (id: string) => row('claims', id);
  const invoice = (id: string) => row('invoices', id);
  const kase = async (id: string) =>
    (await db.query<{ status: string; resolution: string | null }>(`SELECT status, resolution FROM cases WHERE id = $1`, [id])).rows[0];

  /** Everything a merchant would see of the case, with the case-specific ids taken out. */
  async function endState(s: Seeded) {
    return {
      case: await kase(s.caseId),
      claims: await Promise.all(s.claimIds.map(claim)),
      invoices: await Promise.all(s.invoiceIds.map(invoice)),
    };
  }

  it('an in_collection update then an older paid update: the older one is stale, not applied, and the status stays', async () => {
    const s = await seedCase();
    expect(await deliver(update(s, { status: 'in_collection', occurredAt: t(2), seq: 2 }))).toBe('applied');
    expect(await deliver(update(s, { status: 'paid', reason: 'paid_in_full', amountCollected: { value: 4900, currency: 'EUR' }, occurredAt: t(1), seq: 1 }))).toBe('stale');
    expect(await claim(s.claimIds[0])).toEqual({ status: 'in_collection', resolution: null, amount_collected: 0 });
    expect(await invoice(s.invoiceIds[0])).toEqual({ status: 'in_collection', resolution: null, amount_collected: 0 });
    // The case follows its claims (src/ledger/case-status.ts, since 209c797): in collection, not paid.
    expect((await kase(s.caseId)).status).toBe('in_collection');
    const log = (await db.query(`SELECT outcome, case_id FROM exchanges WHERE case_id = $1`, [s.caseId])).rows;
    expect(log).toEqual([{ outcome: 'stale', case_id: s.caseId }]);
    const claimHistory = (await db.query(`SELECT status FROM status_history WHERE entity = 'claim' AND entity_id = $1`, [s.claimIds[0]])).rows;
    expect(claimHistory).toEqual([{ status: 'in_collection' }]);
  });

  it('at the same occurredAt, the lower seq is stale and the higher seq is applied', async () => {
    const s = await seedCase();
    expect(await deliver(update(s, { status: 'in_collection', occurredAt: t(1), seq: 5 }))).toBe('applied');
    expect(await deliver(update(s, { status: 'on_hold', occurredAt: t(1), seq: 4 }))).toBe('stale');
    expect((await claim(s.claimIds[0])).status).toBe('in_collection');
    expect(await deliver(update(s, { status: 'arrangement', occurredAt: t(1), seq: 6 }))).toBe('applied');
    expect((await claim(s.claimIds[0])).status).toBe('arrangement');
  });

  it('a newer update applies even with a lower seq (time comes first)', async () => {
    const s = await seedCase();
    await deliver(update(s, { status: 'in_collection', occurredAt: t(1), seq: 50 }));
    expect(await deliver(update(s, { status: 'partially_paid', amountCollected: { value: 1000, currency: 'EUR' }, occurredAt: t(2), seq: 3 }))).toBe('applied');
    expect(await claim(s.claimIds[0])).toMatchObject({ status: 'partially_paid', amount_collected: 1000 });
  });

  it('applies each stored update once: running its apply_update row again changes nothing', async () => {
    const s = await seedCase();
    const upd = update(s, { status: 'in_collection', occurredAt: t(1), seq: 1 });
    expect(await deliver(upd)).toBe('applied');
    const id = (await db.query<{ id: number }>(`SELECT id FROM partner_updates WHERE update_id = $1`, [upd.id])).rows[0].id;
    const again = (await db.query<OutboxRow<'apply_update'>>(
      `INSERT INTO outbox (kind, lane, payload, idempotency_key, status) VALUES ('apply_update','hub',$1,$2,'in_flight') RETURNING *`,
      [JSON.stringify({ partnerUpdateId: id }), `again-${upd.id}`],
    )).rows[0];
    await applyPartnerUpdate(ctx, again);
    const h = (await db.query(`SELECT status FROM status_history WHERE entity IN ('claim','invoice') AND entity_id = ANY($1::text[])`, [[...s.claimIds, ...s.invoiceIds]])).rows;
    expect(h).toHaveLength(2); // one for the claim, one for its invoice
  });

  describe('replayed shuffled, the end state is the same as in order', () => {
    const script = (s: Seeded): AgencyUpdate[] => [
      update(s, { status: 'in_collection', occurredAt: t(1), seq: 1 }),
      update(s, { status: 'arrangement', occurredAt: t(2), seq: 2, arrangement: { installments: 3, amount: { value: 1634, currency: 'EUR' }, firstDueAt: t(10) } }),
      update(s, { status: 'partially_paid', amountCollected: { value: 1634, currency: 'EUR' }, occurredAt: t(10), seq: 3 }),
      update(s, { status: 'partially_paid', amountCollected: { value: 3268, currency: 'EUR' }, occurredAt: t(10), seq: 4 }),
      update(s, { status: 'paid', reason: 'paid_via_arrangement', amountCollected: { value: 4900, currency: 'EUR' }, occurredAt: t(40), seq: 5 }),
    ];

    // A small deterministic PRNG, so a failing order can be replayed.
    function shuffled<T>(xs: T[], seed: number): T[] {
      let x = seed;
      const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const out = [...xs];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    }

    let expected: Awaited<ReturnType<typeof endState>>;
    beforeAll(async () => {
      const s = await seedCase();
      for (const upd of script(s)) await deliver(upd);
      expected = await endState(s);
    });

    it('in order, the claim ends paid via arrangement and the case closes as paid', () => {
      expect(expected).toEqual({
        case: { status: 'paid', resolution: 'paid_in_full' },
        claims: [{ status: 'paid', resolution: 'paid_via_arrangement', amount_collected: 4900 }],
        invoices: [{ status: 'paid', resolution: 'paid_via_arrangement', amount_collected: 4900 }],
      });
    });

    it.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])('claim-level updates, shuffle seed %i', async (seed) => {
      const s = await seedCase();
      const order = shuffled(script(s), seed);
      for (const upd of order) await deliver(upd);
      expect(await endState(s)).toEqual(expected);
    });

    it('claim-level updates, reversed', async () => {
      const s = await seedCase();
      const statuses = [];
      for (const upd of script(s).reverse()) statuses.push(await deliver(upd));
      expect(statuses).toEqual(['applied', 'stale', 'stale', 'stale', 'stale']);
      expect(await endState(s)).toEqual(expected);
    });

    // Regression test: this once failed (found by these tests, fixed in src).
    it('a case-level update older than the claim update that closed the case does not reopen it', async () => {
      const s = await seedCase();
      const inOrder = await seedCase();
      const mk = (x: Seeded) => [
        update(x, { status: 'in_collection', occurredAt: t(1), seq: 1 }),
        update(x, { status: 'on_hold', claimReference: null, occurredAt: t(2), seq: 2 }),
        update(x, { status: 'paid', reason: 'paid_in_full', amountCollected: { value: 4900, currency: 'EUR' }, occurredAt: t(3), seq: 3 }),
      ];
      for (const upd of mk(inOrder)) await deliver(upd);
      expect(await kase(inOrder.caseId)).toEqual({ status: 'paid', resolution: 'paid_in_full' });
      const [first, caseLevel, last] = mk(s);
      await deliver(last);
      await deliver(caseLevel);
      await deliver(first);
      expect(await endState(s)).toEqual(await endState(inOrder));
    });
  });

  describe('case-level updates (claimReference null)', () => {
    it('apply to the case and to every open claim and its invoice, not to a claim already ended', async () => {
      const s = await seedCase({ claims: 2 });
      // The second invoice was paid to the merchant after hand-over (the ledger ends its claim).
      await db.query(`UPDATE claims SET status = 'paid', resolution = 'paid_to_merchant' WHERE id = $1`, [s.claimIds[1]]);
      await db.query(`UPDATE invoices SET status = 'paid', resolution = 'paid_to_merchant' WHERE id = $1`, [s.invoiceIds[1]]);
      const arrangement = { installments: 2, amount: { value: 2450, currency: 'EUR' }, firstDueAt: t(7) };
      expect(await deliver(update(s, { status: 'arrangement', claimReference: null, arrangement, occurredAt: t(1), seq: 1 }))).toBe('applied');
      expect((await kase(s.caseId)).status).toBe('arrangement');
      expect((await claim(s.claimIds[0])).status).toBe('arrangement');
      expect((await invoice(s.invoiceIds[0])).status).toBe('arrangement');
      const arr = (await db.query(`SELECT arrangement FROM invoices WHERE id = $1`, [s.invoiceIds[0]])).rows[0].arrangement;
      expect(arr).toEqual(arrangement);
      expect(await claim(s.claimIds[1])).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
      expect(await invoice(s.invoiceIds[1])).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
    });

    it('do not overwrite a claim whose own news is newer', async () => {
      const s = await seedCase({ claims: 2 });
      await deliver(update(s, { status: 'partially_paid', amountCollected: { value: 1000, currency: 'EUR' }, claimReference: s.claimIds[0], occurredAt: t(3), seq: 3 }));
      expect(await deliver(update(s, { status: 'on_hold', claimReference: null, occurredAt: t(2), seq: 2 }))).toBe('applied');
      expect((await kase(s.caseId)).status).toBe('on_hold');
      expect((await claim(s.claimIds[0])).status).toBe('partially_paid');
      expect((await claim(s.claimIds[1])).status).toBe('on_hold');
    });

    it('a case-level update older than the last case-level update is stale', async () => {
      const s = await seedCase();
      await deliver(update(s, { status: 'in_collection', claimReference: null, occurredAt: t(5), seq: 5 }));
      expect(await deliver(update(s, { status: 'on_hold', claimReference: null, occurredAt: t(4), seq: 9 }))).toBe('stale');
      expect((await kase(s.caseId)).status).toBe('in_collection');
    });

    it('closing the whole case ends every open claim and the case', async () => {
      const s = await seedCase({ claims: 2 });
      expect(await deliver(update(s, { status: 'uncollectible', reason: 'debtor_insolvent', claimReference: null, occurredAt: t(1), seq: 1 }))).toBe('applied');
      expect(await kase(s.caseId)).toEqual({ status: 'uncollectible', resolution: 'debtor_insolvent' });
      for (const id of s.claimIds) expect(await claim(id)).toMatchObject({ status: 'uncollectible', resolution: 'debtor_insolvent' });
      for (const id of s.invoiceIds) expect(await invoice(id)).toMatchObject({ status: 'uncollectible', resolution: 'debtor_insolvent' });
      const closed = (await db.query(`SELECT closed_at FROM cases WHERE id = $1`, [s.caseId])).rows[0].closed_at;
      expect(closed).not.toBeNull();
    });
  });

  describe('tenant safety', () => {
    it('an update for a case of ANOTHER partner is not applied', async () => {
      const s = await seedCase({ partnerId: 'refagency' });
      // otheragency knows (or guesses) the case's ids, and pushes an update for it.
      const status = await deliver(update(s, { status: 'withdrawn', claimReference: null, occurredAt: t(1), seq: 1 }), 'otheragency');
      expect(status).toBe('failed');
      expect((await kase(s.caseId)).status).toBe('submitted');
      expect((await claim(s.claimIds[0])).status).toBe('submitted');
      expect((await invoice(s.invoiceIds[0])).status).toBe('submitted');
      const claimLevel = await deliver(update(s, { status: 'paid', occurredAt: t(2), seq: 2 }), 'otheragency');
      expect(claimLevel).toBe('failed');
      expect((await claim(s.claimIds[0])).status).toBe('submitted');
      const h = (await db.query(`SELECT count(*)::int AS n FROM status_history WHERE entity_id = ANY($1::text[])`, [[s.caseId, ...s.claimIds, ...s.invoiceIds]])).rows[0].n;
      expect(h).toBe(0);
    });

    it('an update naming a claim of another case of the same partner is not applied', async () => {
      const a = await seedCase();
      const b = await seedCase();
      const status = await deliver(update(a, { status: 'paid', claimReference: b.claimIds[0], occurredAt: t(1), seq: 1 }));
      expect(status).toBe('failed');
      expect((await claim(b.claimIds[0])).status).toBe('submitted');
      expect((await claim(a.claimIds[0])).status).toBe('submitted');
    });
  });

  // Regression test: this once failed (found by these tests, fixed in src).
  it('a claim the hub already ended (paid to the merchant) keeps that end when the agency reports in_collection', async () => {
    const s = await seedCase();
    await db.query(`UPDATE claims SET status = 'paid', resolution = 'paid_to_merchant' WHERE id = $1`, [s.claimIds[0]]);
    await db.query(`UPDATE invoices SET status = 'paid', resolution = 'paid_to_merchant' WHERE id = $1`, [s.invoiceIds[0]]);
    await db.query(`UPDATE cases SET status = 'paid', resolution = 'paid_to_merchant' WHERE id = $1`, [s.caseId]);
    await deliver(update(s, { status: 'in_collection', occurredAt: t(1), seq: 1 }));
    expect(await claim(s.claimIds[0])).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
    expect(await invoice(s.invoiceIds[0])).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
  });
});
