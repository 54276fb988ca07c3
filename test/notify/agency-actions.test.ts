/**
 * The hold and resume stages (src/delivery/agency-actions.ts), called directly with a hub context
 * built by createHub: they wait until the case is at the agency, call the connector's optional
 * `hold`/`resume` with the case's partner ref, the reason, the claim and the row's idempotency
 * key, record the exchange and the timeline entry, and complete the row; a connector without the
 * method dead-letters the row with that reason. The connector is a stand-in here (the reference
 * connector's own hold/resume come with their own tests).
 */
import { deliverHold, deliverResume } from '../../src/delivery/agency-actions';
import { Defer, Permanent } from '../../src/pipeline/errors';
import { addToOutbox, type StoredOutboxRow } from '../../src/outbox/outbox';
import type { CaseAction } from '../../src/delivery/agency-actions';
import type { CallContext } from '../../connectors/agency/types';
import { claim, notifyHub, seedInvoice, type NotifyHub } from './support';

describe('hold and resume stages', () => {
  let h: NotifyHub;
  const calls: { method: string; ref: string; action: CaseAction; key: string }[] = [];

  beforeAll(async () => {
    h = await notifyHub();
    const runtime = h.ctx.partners.get('refagency')!;
    const real = runtime.client;
    const record = (method: string) => async (ref: string, action: CaseAction, c: CallContext) => {
      calls.push({ method, ref, action, key: c.idempotencyKey });
      c.onExchange?.({ method: 'POST', url: `http://agency.test/v1/cases/${ref}/${method}`, requestBody: action, status: 202, responseBody: { ok: true }, latencyMs: 3 });
    };
    runtime.client = Object.assign(Object.create(real), { hold: record('hold'), resume: record('resume') });
  });
  afterAll(async () => {
    await h?.stop();
  });

  async function row(kind: 'agency.hold' | 'agency.resume', s: { caseId: string | null; claimId: string | null; invoiceId: string }, key: string): Promise<StoredOutboxRow> {
    const item = await h.ctx.db.tx((sql) =>
      addToOutbox(sql, { kind: kind as never, lane: 'partner.refagency', payload: { caseId: s.caseId, claimId: s.claimId, reason: 'customer called: paying next week' } as never, idempotencyKey: key, merchantId: 'acme', invoiceId: s.invoiceId, caseId: s.caseId }, new Date()),
    );
    return claim(h.ctx, item!.id);
  }

  it('holds, then resumes, the claim at the agency, each with its own idempotency key, logged', async () => {
    const s = await seedInvoice(h.ctx, { ref: 'in_hold1', partnerRef: 'case_000042', status: 'on_hold' });
    const held = await row('agency.hold', s, `hold-${s.claimId}-1`);
    await deliverHold(h.ctx, held);
    const resumed = await row('agency.resume', s, `resume-${s.claimId}-1`);
    await deliverResume(h.ctx, resumed);
    expect(calls).toEqual([
      { method: 'hold', ref: 'case_000042', action: { reason: 'customer called: paying next week', claimReference: s.claimId }, key: `hold-${s.claimId}-1` },
      { method: 'resume', ref: 'case_000042', action: { reason: 'customer called: paying next week', claimReference: s.claimId }, key: `resume-${s.claimId}-1` },
    ]);
    const rows = (await h.ctx.db.query(`SELECT status FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY id`, [[held.id, resumed.id]])).rows;
    expect(rows).toEqual([{ status: 'done' }, { status: 'done' }]);
    const log = (await h.ctx.db.query(`SELECT party, operation, outcome FROM exchanges WHERE outbox_id = ANY($1::bigint[]) ORDER BY id`, [[held.id, resumed.id]])).rows;
    expect(log).toEqual([
      { party: 'refagency', operation: 'POST /v1/cases/case_000042/hold', outcome: 'ok' },
      { party: 'refagency', operation: 'POST /v1/cases/case_000042/resume', outcome: 'ok' },
    ]);
    const timeline = (await h.ctx.db.query(`SELECT status, reason FROM status_history WHERE entity = 'claim' AND entity_id = $1 ORDER BY id`, [s.claimId])).rows;
    expect(timeline).toEqual([
      { status: 'hold_sent', reason: 'customer called: paying next week' },
      { status: 'resume_sent', reason: 'customer called: paying next week' },
    ]);
  });

  it('waits while the case is not at the agency yet', async () => {
    const s = await seedInvoice(h.ctx, { ref: 'in_hold2', inCase: true });
    await expect(deliverHold(h.ctx, await row('agency.hold', s, `hold-${s.claimId}-1`))).rejects.toBeInstanceOf(Defer);
  });

  it('a connector that cannot hold dead-letters the row, saying so', async () => {
    const s = await seedInvoice(h.ctx, { ref: 'in_hold3', partnerRef: 'case_000043' });
    const runtime = h.ctx.partners.get('refagency')!;
    const saved = runtime.client;
    runtime.client = Object.assign(Object.create(saved), { hold: undefined });
    try {
      const err = await deliverHold(h.ctx, await row('agency.hold', s, `hold-${s.claimId}-1`)).catch((e) => e);
      expect(err).toBeInstanceOf(Permanent);
      expect(err.message).toMatch(/cannot hold/);
    } finally {
      runtime.client = saved;
    }
  });
});
