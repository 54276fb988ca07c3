/**
 * Hold and resume at the reference-personality simulator (the hub's extension of contract §5,
 * like withdraw's claimReference): hold puts the case or one claim `on_hold` with one update and
 * its lifecycle waits; resume puts it back `in_collection` and the scenario carries on.
 */
import crypto from 'node:crypto';
import axios, { type AxiosResponse } from 'axios';
import jwt from 'jsonwebtoken';
import type { AgencyUpdate } from '../../src/domain/types';
import { createAgencySimulator, type AgencySimulator } from '../../sim/agency-sim/simulator';

const IN_SECRET = 'hub-to-agency-shared-secret-0123456789';

const running: AgencySimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

async function startSim(): Promise<{ sim: AgencySimulator; url: string }> {
  const sim = createAgencySimulator({ inSecret: IN_SECRET, stepMs: 0 });
  const { url } = await sim.start(0, '127.0.0.1');
  running.push(sim);
  return { sim, url };
}

const token = () => jwt.sign({}, IN_SECRET, { algorithm: 'HS256', issuer: 'collection-hub', audience: 'refagency', expiresIn: 120, jwtid: crypto.randomUUID() });

function post(url: string, path: string, body: unknown, key: string | null = crypto.randomUUID()): Promise<AxiosResponse> {
  return axios.post(url + path, body, {
    validateStatus: () => true,
    headers: { Authorization: `Bearer ${token()}`, ...(key ? { 'Idempotency-Key': key } : {}) },
  });
}

const claim = (reference: string, value: number) => ({ reference, principal: { value, currency: 'EUR' }, failure: { provider: 'stripe', code: 'insufficient_funds', reason: 'insufficient_funds' } });

async function openCase(url: string, scenario = 'paid'): Promise<string> {
  const res = await post(url, '/v1/cases', {
    reference: `case-${crypto.randomUUID()}#scenario=${scenario}`,
    creditor: { id: 'acme', name: 'Acme' },
    debtor: { reference: 'cus_1', type: 'consumer', name: 'Jo Jansen' },
    claims: [claim('in_1', 1000), claim('in_2', 500)],
  });
  expect(res.status).toBe(201);
  return res.data.id as string;
}

const brief = (u: AgencyUpdate): string => [u.claimReference ?? 'case', u.status, u.reason, u.note].filter((x) => x !== undefined).join(' ');
const stepAll = (sim: AgencySimulator, n: number) => {
  for (let i = 0; i < n; i++) sim.step();
};

describe('reference personality: hold and resume', () => {
  it('holds the whole case: one on_hold update, no steps while held, then resumes to the end', async () => {
    const { sim, url } = await startSim();
    const id = await openCase(url);
    sim.step(); // in_collection

    const held = await post(url, `/v1/cases/${id}/hold`, { reason: 'customer called, paying next week' });
    expect(held.status).toBe(202);
    expect(held.data).toMatchObject({ id, status: 'on_hold', changed: true });
    stepAll(sim, 5);
    expect(sim.updates().map(brief)).toEqual(['case submitted', 'case in_collection', 'case on_hold on hold: customer called, paying next week']);
    expect(sim.case(id).claims.map((k) => k.status)).toEqual(['on_hold', 'on_hold']);

    const resumed = await post(url, `/v1/cases/${id}/resume`, { reason: 'no payment came' });
    expect(resumed.status).toBe(202);
    stepAll(sim, 5);
    expect(sim.updates().map(brief).slice(3)).toEqual([
      'case in_collection resumed: no payment came',
      'in_1 paid paid_in_full',
      'in_2 paid paid_in_full',
      'case paid paid_in_full',
    ]);
  });

  it('holds one claim: it waits while the other goes on; resumed, it follows', async () => {
    const { sim, url } = await startSim();
    const id = await openCase(url);
    sim.step();

    const held = await post(url, `/v1/cases/${id}/hold`, { reason: 'disputed by phone', claimReference: 'in_1' });
    expect(held.data).toMatchObject({ claimReference: 'in_1', claimStatus: 'on_hold', changed: true });
    stepAll(sim, 3);
    expect(sim.updates().map(brief).slice(2)).toEqual(['in_1 on_hold on hold: disputed by phone', 'in_2 paid paid_in_full']);
    expect(sim.case(id).finalized).toBe(false);

    await post(url, `/v1/cases/${id}/resume`, { reason: 'settled', claimReference: 'in_1' });
    stepAll(sim, 3);
    expect(sim.updates().map(brief).slice(4)).toEqual(['in_1 in_collection resumed: settled', 'in_1 paid paid_in_full', 'case paid paid_in_full']);
  });

  it('keeps holding a held case and resuming a running one as no-ops (no update)', async () => {
    const { sim, url } = await startSim();
    const id = await openCase(url, 'manual');
    expect((await post(url, `/v1/cases/${id}/resume`, { reason: 'x' })).data).toMatchObject({ changed: false });
    await post(url, `/v1/cases/${id}/hold`, { reason: 'x' });
    const again = await post(url, `/v1/cases/${id}/hold`, { reason: 'x' });
    expect(again.status).toBe(202);
    expect(again.data.changed).toBe(false);
    expect(sim.updates().filter((u) => u.status === 'on_hold')).toHaveLength(1);
  });

  it('does not step a held case on its timer, and the timer picks it up after resume', async () => {
    const sim = createAgencySimulator({ inSecret: IN_SECRET, stepMs: 20 });
    const { url } = await sim.start(0, '127.0.0.1');
    running.push(sim);
    const id = await openCase(url);
    await post(url, `/v1/cases/${id}/hold`, { reason: 'x' });
    // (The timer may have moved it to in_collection before the hold came: what counts is what follows.)
    const atHold = sim.updates().length;
    expect(sim.updates().at(-1)?.status).toBe('on_hold');
    await new Promise((r) => setTimeout(r, 150));
    expect(sim.case(id).status).toBe('on_hold');
    expect(sim.updates()).toHaveLength(atHold);
    await post(url, `/v1/cases/${id}/resume`, { reason: 'y' });
    const deadline = Date.now() + 3000;
    while (!sim.case(id).finalized && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sim.case(id)).toMatchObject({ status: 'paid', finalized: true });
  });

  it('refuses a closed case or claim (409), a missing reason (400) and a missing Idempotency-Key (400)', async () => {
    const { sim, url } = await startSim();
    const id = await openCase(url);
    expect((await post(url, `/v1/cases/${id}/hold`, {})).data.error).toMatchObject({ code: 'invalid_body', path: 'reason' });
    expect((await post(url, `/v1/cases/${id}/hold`, { reason: 'x' }, null)).data.error.code).toBe('missing_idempotency_key');
    stepAll(sim, 4);
    expect(sim.case(id).finalized).toBe(true);
    expect((await post(url, `/v1/cases/${id}/hold`, { reason: 'x' })).data.error.code).toBe('case_closed');
    expect((await post(url, `/v1/cases/${id}/resume`, { reason: 'x', claimReference: 'in_1' })).data.error.code).toBe('claim_closed');
    expect((await post(url, `/v1/cases/${id}/hold`, { reason: 'x', claimReference: 'in_9' })).status).toBe(404);
  });

  it('replays a hold sent twice under the same key without a second update', async () => {
    const { sim, url } = await startSim();
    const id = await openCase(url, 'manual');
    const first = await post(url, `/v1/cases/${id}/hold`, { reason: 'x' }, 'hold-1');
    const second = await post(url, `/v1/cases/${id}/hold`, { reason: 'x' }, 'hold-1');
    expect(second.status).toBe(202);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.data).toEqual(first.data);
    expect(sim.updates().filter((u) => u.status === 'on_hold')).toHaveLength(1);
  });
});
