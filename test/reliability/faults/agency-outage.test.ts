/**
 * Guarantee 4 — agency outage, in both run modes. The agency (the simulator, behind a small
 * front in the test for the answers it cannot give) times out or answers 503 for a long
 * stretch:
 *  - deliveries back off exponentially with jitter (attempt times read from the agency's log);
 *  - the partner's circuit breaker opens when the calls in its window fail (a rate over a minimum
 *    of calls), lets no call through while open, lets at most `halfOpenProbes` probes through
 *    when half-open, reopens when one fails and closes when all of them succeed;
 *  - the backlog then drains oldest first, and calls about one case keep their order;
 *  - Retry-After (503 and 429) holds the whole partner until then;
 *  - a non-retryable 4xx goes to the dead letter (the circuit stays closed) and is delivered
 *    when retried from the merchant API (also test/e2e/dead-letter-retry.test.ts).
 */
import { createPglite } from '../../../src/store/pglite';
import type { Database } from '../../../src/store/db';
import { circuitBreakers } from '../../../src/delivery/circuit-breaker';
import { postgresAvailable, redisAvailable, waitFor } from '../../support/services';
import type { AgencySimulator } from '../../../sim/agency-sim/simulator';
import {
  failedInvoices, freePort, merchantToken, openServices, paymentFailedEvent, Psp, readAgencyBooks, sleep, spyOnAgencyCalls, startAgencyFront, captureLog,
  startHub, startSim, waitForAgency, type AgencyEvent, type FailedInvoice, type InProcessHub, type Services,
} from './harness';
import { recordFigures } from './figures';

type Mode = 'embedded' | 'services';

describe.each<Mode>(['embedded', 'services'])('agency outage (%s mode)', (mode) => {
  let available = true;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    available = mode === 'embedded' || ((await postgresAvailable()) && (await redisAvailable()));
  }, 30_000);
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }, 60_000);

  /** A hub of this mode (fresh database; BullMQ under a prefix of its own in services mode). */
  async function hubFor(o: Omit<Parameters<typeof startHub>[0], 'db' | 'databaseUrl' | 'redisUrl' | 'queuePrefix'>): Promise<InProcessHub> {
    let db: Database | undefined;
    let services: Services | undefined;
    if (mode === 'embedded') db = await createPglite();
    else services = await openServices();
    const hub = await startHub({ ...o, db, databaseUrl: services?.databaseUrl, redisUrl: services?.redisUrl, queuePrefix: services?.prefix });
    cleanups.push(async () => {
      await hub.stop();
      await db?.close();
      await services?.cleanup();
    });
    return hub;
  }

  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  maybe('backs off exponentially with jitter while the agency times out', async () => {
    const hubPort = await freePort();
    // The agency holds every call 30 ms and drops it, far within the hub's 2 s timeout.
    const { sim } = await startSim(hubPort, { timeoutRate: 1, timeoutMs: 30 });
    cleanups.push(() => sim.stop());
    const base = 150;
    // The hub logs each retry it schedules ("outbox row will be retried", retryInMs): its own record of the delay it chose.
    const log = captureLog('warn');
    const hub = await hubFor({ hubPort, partnerUrl: sim.url!, logger: log.logger, delivery: { baseDelayMs: base, maxDelayMs: 10_000, maxAttempts: 50 } });
    const invoices = failedInvoices({ tag: `j${mode[0]}${Date.now().toString(36)}`, customers: 6, twoInvoices: 0, threeInvoices: 0 });
    await new Psp(() => hub.url!).stream(invoices, paymentFailedEvent, 6);

    const ATTEMPTS = 6;
    const byKey = await waitFor(async () => {
      const m = new Map<string, number[]>();
      for (const r of sim.requests()) if (r.method === 'POST' && r.path === '/v1/cases') m.set(r.idempotencyKey!, [...(m.get(r.idempotencyKey!) ?? []), Date.parse(r.at)]);
      return m.size === invoices.length && [...m.values()].every((ts) => ts.length >= ATTEMPTS) ? m : null;
    }, 40_000, 100, `${ATTEMPTS} attempts of every case`);
    await hub.stop();

    // The delays the hub chose (exact): after attempt n, in [e/2, e] with e = base·2^(n-1).
    const expo = (n: number) => base * 2 ** (n - 1);
    const chosen = log.lines
      .filter((l) => l.message === 'outbox row will be retried' && l.kind === 'agency.create_case' && l.attempt < ATTEMPTS)
      .map((l) => ({ attempt: Number(l.attempt), delayMs: Number(l.retryInMs) }));
    expect(chosen.length).toBeGreaterThanOrEqual(invoices.length * (ATTEMPTS - 1));
    for (const d of chosen) {
      expect(d.delayMs).toBeGreaterThanOrEqual(expo(d.attempt) / 2 - 1);
      expect(d.delayMs).toBeLessThanOrEqual(expo(d.attempt) + 1);
    }
    // Jitter: where in [e/2, e] each delay fell is spread over the range, not one point.
    const position = chosen.map((d) => (d.delayMs - expo(d.attempt) / 2) / (expo(d.attempt) / 2));
    expect(Math.min(...position)).toBeLessThan(0.3);
    expect(Math.max(...position)).toBeGreaterThan(0.7);
    const meanDelay = (n: number) => Math.round(chosen.filter((d) => d.attempt === n).reduce((a, d) => a + d.delayMs, 0) / chosen.filter((d) => d.attempt === n).length);
    for (let n = 2; n < ATTEMPTS; n++) expect(meanDelay(n)).toBeGreaterThan(1.3 * meanDelay(n - 1));
    expect(new Set(chosen.map((d) => d.delayMs)).size).toBeGreaterThan(chosen.length / 2);

    // What the agency saw: attempts of each row at least the backoff apart, and the gaps growing
    // (on average: on a loaded machine the first rounds also carry the hub's own start-up work).
    const gaps = [...byKey.values()].map((ts) => ts.slice(0, ATTEMPTS).map((t, i, a) => (i ? t - a[i - 1] : 0)).slice(1));
    const meanGap = (k: number) => Math.round(gaps.reduce((a, g) => a + g[k], 0) / gaps.length);
    const lastGaps = gaps.map((g) => g[g.length - 1]);
    recordFigures(`4a-backoff-jitter-${mode}`, {
      rows: gaps.length, attemptsEach: ATTEMPTS, meanChosenDelayMs: [1, 2, 3, 4, 5].map(meanDelay), jitterPositionRange: [Math.min(...position), Math.max(...position)].map((x) => +x.toFixed(2)),
      meanGapAtAgencyMs: [0, 1, 2, 3, 4].map(meanGap), gapsAtAgencyMs: gaps.map((g) => g.map(Math.round)),
    });
    for (const g of gaps) g.forEach((gap, k) => expect(gap).toBeGreaterThanOrEqual(expo(k + 1) / 2 - 5));
    // The hub's own work per attempt adds about the same to every gap (hundreds of ms on a loaded
    // machine), so the growth is asserted as a difference: the backoff alone makes it ~1.7 s.
    expect(meanGap(4) - meanGap(0)).toBeGreaterThan(600);
    expect(meanGap(3) - meanGap(1)).toBeGreaterThan(200);
    expect(Math.max(...lastGaps) - Math.min(...lastGaps)).toBeGreaterThan(20);
  });

  describe('circuit breaker, Retry-After and the dead letter', () => {
    let sim: AgencySimulator;
    let front: Awaited<ReturnType<typeof startAgencyFront>>;
    let hub: InProcessHub;
    let events: AgencyEvent[];
    const CONCURRENCY = 4;
    const PROBES = 3;
    const sent: FailedInvoice[] = [];
    let psp: Psp;
    const breaker = () => circuitBreakers(hub.hub.ctx).get('refagency');
    /**
     * Calls go: the circuit is closed, or half-open with a probe slot free — after a short hold
     * with fewer rows due than probes (a Retry-After on one call), it waits half-open for its next
     * calls to close it, as it should.
     */
    const callsGo = () => breaker().stateAt(new Date()) !== 'open' && !breaker().blocks(new Date());
    const transitions = () => events.filter((e): e is Extract<AgencyEvent, { kind: 'transition' }> => e.kind === 'transition');
    const posts = () => front.log.filter((r) => r.method === 'POST');

    beforeAll(async () => {
      if (!available) return;
      const hubPort = await freePort();
      ({ sim } = await startSim(hubPort));
      cleanups.push(() => sim.stop());
      front = await startAgencyFront(sim.url!);
      cleanups.push(() => front.stop());
      hub = await hubFor({
        hubPort, partnerUrl: front.url, partnerTimeoutMs: 800,
        delivery: {
          baseDelayMs: 100, maxDelayMs: 400, maxAttempts: 30, concurrency: CONCURRENCY,
          // Opens once 3 calls in the window all failed; 3 probes per half-open (the default).
          circuitBreaker: { enabled: true, minimumCalls: 3, failureRate: 1, coolDownMs: 800, maxCoolDownMs: 1600, halfOpenProbes: PROBES },
        },
      });
      events = spyOnAgencyCalls(hub.hub);
      psp = new Psp(() => hub.url!);
    }, 60_000);

    maybe('opens when its calls time out, calls nobody while open, sends at most N probes when half-open, then drains the backlog in order', async () => {
      // The agency holds every call 3 s; the hub gives up after 800 ms.
      sim.setFaults({ timeoutRate: 1, timeoutMs: 3000 });
      const tag = `o${mode[0]}${Date.now().toString(36)}`;
      const first = failedInvoices({ tag, customers: 16, twoInvoices: 0, threeInvoices: 0 });
      sent.push(...first);
      const outageFrom = Date.now();
      await psp.stream(first, paymentFailedEvent, 4);
      // Later, second invoices of four of those customers: stacked onto their (not yet delivered) cases.
      const second = first.slice(0, 4).map((f) => ({ ...f, invoice: `${f.invoice}b`, facts: { ...f.facts, invoice: `${f.invoice}b`, number: `${f.invoice}b`, created: f.facts.created + 5 } }));
      sent.push(...second);
      await psp.stream(second, paymentFailedEvent, 4);
      // Outage until a probe has failed (open → half-open → open).
      await waitFor(async () => transitions().map((t) => t.to).join(',').startsWith('open,half_open,open'), 30_000, 20, 'a failed probe');
      // The hub stays ready (webhooks are still taken and stored); /readyz shows the circuit.
      const ready = await fetch(`${hub.url}/readyz`);
      const readyBody = (await ready.json()) as { circuits: Record<string, { state: string }> };
      sim.setFaults({ timeoutRate: 0 });
      expect(ready.status).toBe(200);
      expect(['open', 'half_open']).toContain(readyBody.circuits.refagency.state);
      const recoveredAt = Date.now();
      await waitForAgency(sim, sent, 40_000);
      await waitFor(async () => breaker().stateAt(new Date()) === 'closed', 15_000, 50, 'the circuit closed');

      const ts = transitions();
      const path = ts.map((t) => t.to);
      // Opened once the window held 3 calls, all failed: at most the calls already under way went alongside.
      expect(ts[0].why).toMatch(/^3\/3 calls failed/);
      const startsBefore = events.filter((e) => e.kind === 'start' && e.seq < ts[0].seq).length;
      expect(startsBefore).toBeGreaterThanOrEqual(3);
      expect(startsBefore).toBeLessThanOrEqual(3 + CONCURRENCY - 1);
      // Between a transition and the next: no call while open, at most PROBES while half-open — and
      // exactly PROBES in the half-open that closed it (all of them had to succeed).
      const startsIn = (i: number) => events.filter((e) => e.kind === 'start' && e.seq > ts[i].seq && (i + 1 >= ts.length || e.seq < ts[i + 1].seq)).length;
      const whileOpen = ts.map((t, i) => (t.to === 'open' ? startsIn(i) : 0));
      const probes = ts.map((t, i) => (t.to === 'half_open' ? startsIn(i) : null)).filter((n): n is number => n !== null);
      expect(whileOpen.every((n) => n === 0)).toBe(true);
      expect(probes.length).toBeGreaterThanOrEqual(2);
      if (!probes.every((n) => n >= 1 && n <= PROBES)) {
        const story = events.map((e) => (e.kind === 'transition' ? `${e.to} (${e.why})` : `${e.kind} #${e.call}${e.kind === 'end' ? ` ${e.status ?? 'no answer'}` : ''}`));
        throw new Error(`calls per half-open: ${JSON.stringify(probes)}, in order: ${story.join(', ')}`);
      }
      // open → half-open → open (a probe failed) … → half-open → closed (all probes succeeded).
      expect(path.slice(0, 3)).toEqual(['open', 'half_open', 'open']);
      const closing = path.indexOf('closed');
      expect(closing).toBeGreaterThan(2);
      expect(path[closing - 1]).toBe('half_open');
      expect(startsIn(closing - 1)).toBe(PROBES);
      expect(ts[closing].why).toBe(`${PROBES} probes succeeded`);
      // Every call the hub made reached the agency (the front counts them too).
      expect(posts().length).toBe(events.filter((e) => e.kind === 'start').length);

      // Exactly once at the agency.
      const books = readAgencyBooks(sim, sent);
      expect(books.lost).toEqual([]);
      expect(books.duplicatedInvoices).toEqual([]);
      expect(books.customersWithTwoCases).toEqual([]);
      expect(books.keysActedTwice).toEqual([]);

      // Oldest first: after the successful probe, cases go in the order their hand-over was decided.
      const rank = new Map(
        (await hub.hub.ctx.db.query<{ idempotency_key: string }>(`SELECT idempotency_key FROM outbox WHERE kind = 'agency.create_case' ORDER BY id`)).rows.map((r, i) => [r.idempotency_key, i]),
      );
      const reopened = ts.findIndex((t, i) => i > closing && t.to === 'open');
      const drainStarts = events.filter(
        (e): e is Extract<AgencyEvent, { kind: 'start' }> => e.kind === 'start' && e.op === 'submitCase' && e.seq > ts[closing].seq && (reopened < 0 || e.seq < ts[reopened].seq),
      );
      // The first call of each row (a row that failed again on a slow machine is retried later, as it should).
      const firstCalls = drainStarts.filter((e, i) => drainStarts.findIndex((x) => x.key === e.key) === i);
      const drained = firstCalls.map((e) => rank.get(e.key)!);
      const sorted = [...drained].sort((a, b) => a - b);
      const displacement = drained.map((r, i) => Math.abs(sorted.indexOf(r) - i));
      expect(drained.length).toBeGreaterThanOrEqual(8);
      if (Math.max(...displacement) >= CONCURRENCY) throw new Error(`drained out of order: ${drained.join(',')}`);
      // Per case strictly in order: a stacked claim is sent after its case was created, never before (no 404).
      for (const f of sent.slice(16)) {
        const kase = sim.cases().find((c) => c.debtor.name === f.customer)!;
        const reqs = sim.requests();
        const createdIdx = reqs.findIndex((r) => r.path === '/v1/cases' && r.idempotencyKey === `case-${kase.reference}` && r.status === 201);
        const claimCalls = reqs.map((r, i) => ({ r, i })).filter(({ r }) => r.path === `/v1/cases/${kase.id}/claims`);
        expect(createdIdx).toBeGreaterThanOrEqual(0);
        expect(claimCalls.length).toBeGreaterThanOrEqual(1);
        expect(claimCalls.every(({ r, i }) => i > createdIdx && r.status === 201)).toBe(true);
        expect(kase.claims.map((k) => k.number).sort()).toEqual([f.invoice.replace(/b$/, ''), f.invoice].sort());
      }
      // …and no stacked claim even ran before its case was at the agency (it waited; it was not deferred and retried).
      const counted = (await hub.hub.ctx.metrics.deliveries.get()).values;
      const claimDeferrals = counted.filter((v) => v.labels.kind === 'agency.add_claim' && v.labels.outcome === 'deferred').reduce((a, v) => a + v.value, 0);
      expect(claimDeferrals).toBe(0);
      // The outage used up no attempts of the rows that waited behind the circuit.
      const attempts = (await hub.hub.ctx.db.query<{ attempts: number }>(`SELECT attempts FROM outbox WHERE lane = 'partner.refagency' ORDER BY attempts DESC`)).rows.map((r) => r.attempts);
      const untouched = attempts.filter((a) => a === 1).length;
      expect(untouched).toBeGreaterThan(attempts.length / 2);

      recordFigures(`4b-circuit-breaker-${mode}`, {
        cases: 16, stackedClaims: 4, outageMs: recoveredAt - outageFrom, callsDuringOutage: events.filter((e) => e.kind === 'start' && e.at < recoveredAt).length,
        transitions: path, callsWhileOpen: whileOpen.reduce((a, b) => a + b, 0), probes, drainedAfterProbe: drained.length, drainMaxDisplacement: Math.max(...displacement),
        claimDeferrals, rowsThatNeverFailed: untouched, rows: attempts.length, maxAttempts: attempts[0], lost: books.lost.length,
        duplicated: books.duplicatedInvoices.length + books.customersWithTwoCases.length + books.keysActedTwice.length,
      });
    });

    maybe('honours Retry-After: a 503 holds the whole partner for its delay, so does a 429', async () => {
      await waitFor(async () => callsGo(), 15_000, 50, 'a circuit that lets calls go');
      // 503 with Retry-After: 1 (the simulator's own error fault). Backoff alone would retry in 100–400 ms,
      // the cool-down alone in 800 ms.
      const from = events.length;
      sim.setFaults({ errorRate: 1 });
      const batch = failedInvoices({ tag: `a${mode[0]}${Date.now().toString(36)}`, customers: 3, twoInvoices: 0, threeInvoices: 0 });
      sent.push(...batch);
      await psp.stream(batch, paymentFailedEvent, 3);
      const ends503 = () => events.slice(from).filter((e): e is Extract<AgencyEvent, { kind: 'end' }> => e.kind === 'end' && e.status === 503);
      await waitFor(async () => ends503().length >= 6, 20_000, 50, 'six calls answered 503');
      sim.setFaults({ errorRate: 0 });
      await waitForAgency(sim, sent, 20_000);
      const held = (ends: Extract<AgencyEvent, { kind: 'end' }>[]) =>
        ends.map((e) => {
          const next = events.find((x) => x.kind === 'start' && x.seq > e.seq);
          return next ? next.at - e.at : Infinity;
        });
      const after503 = held(ends503());
      expect(ends503().every((e) => e.retryAfterMs === 1000)).toBe(true);
      // After each 503, the next call to the agency (any row) comes no sooner than its Retry-After.
      expect(Math.min(...after503)).toBeGreaterThanOrEqual(995);

      // 429 with Retry-After: 2 from the front for the first call; a second case arrives during the pause.
      await waitFor(async () => callsGo(), 15_000, 50, 'a circuit that lets calls go');
      const from429 = events.length;
      let throttled = 0;
      front.setRule((req) => (req.method === 'POST' && throttled++ === 0 ? { status: 429, headers: { 'Retry-After': '2' }, body: { error: { code: 'rate_limited', message: 'slow down' } } } : undefined));
      const [x, y] = failedInvoices({ tag: `t${mode[0]}${Date.now().toString(36)}`, customers: 2, twoInvoices: 0, threeInvoices: 0 });
      sent.push(x, y);
      await psp.deliver(paymentFailedEvent(x));
      const end429 = await waitFor(async () => events.slice(from429).find((e): e is Extract<AgencyEvent, { kind: 'end' }> => e.kind === 'end' && e.status === 429), 15_000, 20, 'the throttled call');
      await sleep(300);
      await psp.deliver(paymentFailedEvent(y));
      await waitForAgency(sim, sent, 20_000);
      front.setRule(() => undefined);
      const startsAfter = events.filter((e) => e.kind === 'start' && e.seq > end429.seq);
      expect(end429.retryAfterMs).toBe(2000);
      // Nobody called during the 2 s: neither the throttled row nor the case that came meanwhile.
      expect(startsAfter.length).toBeGreaterThanOrEqual(2);
      expect(startsAfter.every((e) => e.at - end429.at >= 1995)).toBe(true);
      recordFigures(`4c-retry-after-${mode}`, {
        answered503: ends503().length, retryAfter503Ms: 1000, nextCallAfter503Ms: Math.min(...after503),
        retryAfter429Ms: 2000, nextCallAfter429Ms: Math.min(...startsAfter.map((e) => e.at - end429.at)),
      });
    });

    maybe('dead-letters a non-retryable 4xx without opening the circuit, and delivers it when retried from the API', async () => {
      await waitFor(async () => callsGo(), 15_000, 50, 'a circuit that lets calls go');
      const before = transitions().length;
      const [bad, good] = failedInvoices({ tag: `u${mode[0]}${Date.now().toString(36)}`, customers: 2, twoInvoices: 0, threeInvoices: 0 });
      front.setRule((req) =>
        req.method === 'POST' && req.path === '/v1/cases' && req.body?.debtor?.name === bad.customer
          ? { status: 422, body: { error: { code: 'invalid_debtor', message: 'the debtor has no postal address' } } }
          : undefined,
      );
      await psp.stream([bad, good], paymentFailedEvent, 2);
      const auth = { authorization: `Bearer ${merchantToken('acme')}` };
      const dead = await waitFor(async () => {
        const r = await fetch(`${hub.url}/v1/deliveries?status=dead`, { headers: auth });
        return ((await r.json()) as { data: any[] }).data.find((d) => d.kind === 'agency.create_case');
      }, 15_000, 100, 'the dead-lettered case');
      expect(dead).toMatchObject({ status: 'dead', lastStatus: 422, attempts: 1 });
      expect(JSON.stringify(dead.lastResponse)).toMatch(/invalid_debtor/);
      await waitForAgency(sim, [good], 15_000);
      // A refusal is an answer, not an outage: the circuit did not open (a half-open one left
      // waiting by the Retry-After test may close: the refusal and the other case are answers).
      expect(transitions().slice(before).filter((t) => t.to !== 'closed')).toEqual([]);

      front.setRule(() => undefined);
      const retry = await fetch(`${hub.url}/v1/deliveries/${dead.id}/retry`, { method: 'POST', headers: auth });
      expect(retry.status).toBe(202);
      await waitForAgency(sim, [bad, good], 15_000);
      sent.push(bad, good);
      const books = readAgencyBooks(sim, sent);
      expect(books.lost).toEqual([]);
      expect(books.duplicatedInvoices).toEqual([]);
      expect(books.customersWithTwoCases).toEqual([]);
      recordFigures(`4d-dead-letter-${mode}`, { deadStatus: dead.lastStatus, retriedFromApi: retry.status, circuitOpenings: transitions().slice(before).filter((t) => t.to === 'open').length, delivered: true });
    });
  });
});
