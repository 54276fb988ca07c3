/**
 * apply_update decided in memory (src/sync/update-state.ts): a batch's updates see what the ones
 * before them did, a partner never reaches another partner's case, the case follows its claims,
 * and a case-wide amount on a case of one claim is that claim's (no SQL here: the state is given).
 */
import type { AgencyUpdate } from '../../src/domain/types';
import type { CaseRow, ClaimRow, InvoiceRow } from '../../src/ledger/rows';
import { applyUpdateInMemory, type UpdateState } from '../../src/sync/update-state';

const day = (d: number) => new Date(Date.UTC(2026, 10, d));
const now = day(20);

function world(claimCount = 1): UpdateState {
  const kase = {
    id: 'cse_1', merchant_id: 'acme', customer_id: 'cust_1', partner_id: 'refagency', partner_ref: 'AG-1', status: 'submitted', resolution: null, currency: 'EUR',
    opened_at: day(1), submitted_at: day(1), closed_at: null, last_claim_at: day(1), last_update_at: null, last_update_seq: null, collection_costs: null,
    collection_costs_basis: null, debtor_id: 'dbt_1',
  } as CaseRow;
  const claims: ClaimRow[] = [];
  const invoices = new Map<string, InvoiceRow>();
  for (let i = 1; i <= claimCount; i++) {
    claims.push({
      id: `clm_${i}`, case_id: 'cse_1', invoice_id: `inv_${i}`, merchant_id: 'acme', principal: 4900, currency: 'EUR', status: 'submitted', resolution: null,
      amount_collected: 0, arrangement: null, sent_at: day(1), last_update_at: null, last_update_seq: null,
    });
    invoices.set(`inv_${i}`, {
      id: `inv_${i}`, merchant_id: 'acme', customer_id: 'cust_1', provider: 'stripe', provider_ref: `in_${i}`, currency: 'EUR', amount_due: 4900, amount_paid: 0,
      amount_collected: 0, status: 'submitted', resolution: null, resolved_by: null, arrangement: null, case_id: 'cse_1', last_update_at: null, last_update_seq: null,
      amount_owed_back: 0,
    } as unknown as InvoiceRow);
  }
  return { cases: [kase], claimsByCase: new Map([['cse_1', claims]]), invoices, changed: { cases: new Set(), claims: new Set(), invoices: new Set() }, history: [], exchanges: [], failed: [] };
}

const update = (o: Partial<AgencyUpdate>): AgencyUpdate =>
  ({ id: `upd_${o.seq ?? 1}`, seq: 1, caseId: 'AG-1', caseReference: 'cse_1', status: 'in_collection', occurredAt: day(10).toISOString(), ...o }) as AgencyUpdate;

describe('apply_update in memory', () => {
  it('updates of one batch see each other: the newer wins in either order, the older is stale', () => {
    const a = world();
    expect(applyUpdateInMemory(a, 1, 'refagency', update({ seq: 1, claimReference: 'clm_1', status: 'in_collection' }), now).outcome).toBe('applied');
    expect(applyUpdateInMemory(a, 2, 'refagency', update({ seq: 2, claimReference: 'clm_1', status: 'arrangement', occurredAt: day(11).toISOString() }), now).outcome).toBe('applied');
    const b = world();
    expect(applyUpdateInMemory(b, 2, 'refagency', update({ seq: 2, claimReference: 'clm_1', status: 'arrangement', occurredAt: day(11).toISOString() }), now).outcome).toBe('applied');
    expect(applyUpdateInMemory(b, 1, 'refagency', update({ seq: 1, claimReference: 'clm_1', status: 'in_collection' }), now).outcome).toBe('stale');
    for (const s of [a, b]) {
      expect(s.claimsByCase.get('cse_1')![0].status).toBe('arrangement');
      expect(s.invoices.get('inv_1')!.status).toBe('arrangement');
      // The case follows its claim.
      expect(s.cases[0].status).toBe('arrangement');
      expect([...s.changed.cases]).toEqual([s.cases[0]]);
    }
    expect(b.exchanges.map((e) => e.outcome)).toEqual(['stale']);
  });

  it("a partner never reaches another partner's case", () => {
    const s = world();
    expect(applyUpdateInMemory(s, 1, 'otheragency', update({ claimReference: 'clm_1', status: 'paid' }), now).outcome).toBe('unknown case');
    expect(s.failed).toEqual([{ id: 1, error: 'no case AG-1 (cse_1) at otheragency' }]);
    expect(s.changed.claims.size + s.changed.invoices.size + s.changed.cases.size).toBe(0);
    expect(applyUpdateInMemory(s, 2, 'refagency', update({ claimReference: 'clm_9' }), now).outcome).toBe('unknown claim');
  });

  it("a case-wide amount on a case of one claim is that claim's; on a case of two it is nobody's", () => {
    const paid = update({ status: 'paid', reason: 'paid_in_full', amountCollected: { value: 4900, currency: 'EUR' } });
    const one = world(1);
    expect(applyUpdateInMemory(one, 1, 'refagency', paid, now).outcome).toBe('applied');
    expect(Number(one.claimsByCase.get('cse_1')![0].amount_collected)).toBe(4900);
    expect(Number(one.invoices.get('inv_1')!.amount_collected)).toBe(4900);
    expect(one.cases[0]).toMatchObject({ status: 'paid', resolution: 'paid_in_full', closed_at: now });
    const two = world(2);
    expect(applyUpdateInMemory(two, 1, 'refagency', paid, now).outcome).toBe('applied');
    for (const c of two.claimsByCase.get('cse_1')!) expect(c).toMatchObject({ status: 'paid', amount_collected: 0 });
  });
});
