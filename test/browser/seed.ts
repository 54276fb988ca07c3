/**
 * Demo-like data for the dashboard tests: signed Stripe webhooks for a handful of acme customers
 * (failures that become cases, one paid by the agency, one still in collection with a stacked
 * second invoice, a failure the PSP recovered, an old failure nobody followed up — unexplained —,
 * an ignored event and a duplicate), one globex customer, and one delivery dead-lettered because
 * the agency answered 401 (as in test/e2e/dead-letter-retry.test.ts).
 *
 * The hub's partner address is a small relay that sends each call to one of two simulators: a
 * working agency, or one that does not know the hub's secret (every call 401). Switching the
 * relay swaps the agency without a restart, and the working agency keeps its cases (a fresh
 * simulator would number its cases from case_000001 again, which the hub already holds).
 */
import http from 'node:http';
import { SECRETS, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents, type InvoiceFacts } from '../../sim/psp/stripe-events';
import { createAgencySimulator, type AgencySimulator } from '../../sim/agency-sim/simulator';

const DAY = 86_400;
const nowS = () => Math.floor(Date.now() / 1000);

export interface Seeded {
  anna: InvoiceFacts;
  carl1: InvoiceFacts;
  carl2: InvoiceFacts;
  bob: InvoiceFacts;
  eve: InvoiceFacts;
  dora: InvoiceFacts;
  gx: InvoiceFacts;
  deadDeliveryId: number;
  /** The agency that knows the hub's secret (pushes its updates to the hub). */
  good: AgencySimulator;
  /** The agency that answers every call 401. */
  broken: AgencySimulator;
  /** Which of the two the hub's calls reach from now on. */
  useAgency(which: 'good' | 'broken'): void;
  stop(): Promise<void>;
}

async function ok(r: Promise<Response>) {
  const res = await r;
  if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
}

/** An HTTP relay on `port` that forwards every request to `target()`. */
async function startRelay(port: number, target: () => string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const t = new URL(target());
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

export async function seedDashboardData(stack: Stack): Promise<Seeded> {
  // The stack's own simulator gives up its port to the relay.
  const port = Number(new URL(stack.simUrl).port);
  await stack.sim.stop();
  const good = createAgencySimulator({ partnerId: 'refagency', hubId: 'collection-hub', hubUrl: stack.hubUrl, inSecret: SECRETS.hubToAgency, outSecret: SECRETS.agencyToHub, stepMs: 50, pushBackoffMs: 50 });
  const broken = createAgencySimulator({ partnerId: 'refagency', hubId: 'collection-hub', inSecret: 'an-agency-secret-the-hub-does-not-have-0123', stepMs: 60_000 });
  const goodUrl = (await good.start(0, '127.0.0.1')).url;
  const brokenUrl = (await broken.start(0, '127.0.0.1')).url;
  let current = goodUrl;
  const relay = await startRelay(port, () => current);

  const t = nowS();
  const anna: InvoiceFacts = { invoice: 'in_anna1', customer: 'cus_anna', customerName: 'Anna de Vries', customerEmail: 'anna@example.nl', country: 'NL', amount: 4900, number: 'ACME-1001', subscription: 'sub_anna', created: t - 10 * DAY, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
  // Carl's subscription names acme's own customer id, as does his older web-shop Stripe customer: one debtor.
  const carl1: InvoiceFacts = { invoice: 'in_carl1', customer: 'cus_carl', customerName: 'Carl Jansen', customerEmail: 'carl@example.nl', country: 'NL', amount: 12000, number: 'ACME-1002', subscription: 'sub_carl', created: t - 8 * DAY, nextPaymentAttempt: null, failureCode: 'expired_card', subscriptionMetadata: { customer_id: 'CRM-CARL' } };
  const carl2: InvoiceFacts = { ...carl1, invoice: 'in_carl2', amount: 3500, number: 'ACME-1042', created: t - 2 * DAY };
  const bob: InvoiceFacts = { invoice: 'in_bob1', customer: 'cus_bob', customerName: 'Bob Peeters', customerEmail: 'bob@example.be', country: 'BE', amount: 1999, number: 'ACME-1003', subscription: 'sub_bob', created: t - 5 * DAY, nextPaymentAttempt: t - 3 * DAY, failureCode: 'insufficient_funds' };
  const eve: InvoiceFacts = { invoice: 'in_eve1', customer: 'cus_eve', customerName: 'Eve Smit', customerEmail: 'eve@example.nl', country: 'NL', amount: 7500, number: 'ACME-0977', subscription: 'sub_eve', created: t - 40 * DAY, nextPaymentAttempt: t - 37 * DAY, failureCode: 'do_not_honor' };
  const dora: InvoiceFacts = { invoice: 'in_dora1', customer: 'cus_dora', customerName: 'Dora Bakker', customerEmail: 'dora@example.nl', country: 'NL', amount: 8900, number: 'ACME-1050', subscription: 'sub_dora', created: t - 1 * DAY, nextPaymentAttempt: null, failureCode: 'lost_card' };
  const gx: InvoiceFacts = { invoice: 'in_gx1', customer: 'cus_gx1', customerName: 'Günter Schulz', customerEmail: 'g.schulz@example.de', country: 'DE', amount: 25000, number: 'GX-7001', subscription: 'sub_gx1', created: t - 6 * DAY, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };

  // Anna: handed over, and the agency collects it.
  good.setScenario(null, 'paid');
  const annaFailed = stripeEvents.paymentFailed(anna);
  await ok(stack.sendStripe('acme', annaFailed));
  await waitFor(async () => good.cases().length === 1, 20_000, 50, "anna's case at the agency");
  // Carl and globex's Günter: in collection and staying there.
  good.setScenario(null, 'manual');
  await ok(stack.sendStripe('acme', stripeEvents.paymentFailed(carl1)));
  await ok(stack.sendStripe('globex', stripeEvents.paymentFailed(gx)));
  await waitFor(async () => good.cases().length === 3, 20_000, 50, "carl's and günter's cases");
  await ok(stack.sendStripe('acme', stripeEvents.paymentFailed(carl2)));
  await ok(stack.sendStripe('acme', stripeEvents.paid({ ...carl1, invoice: 'in_carlweb1', customer: 'cus_carlweb', number: 'WEB-0007', amount: 2500, subscription: 'sub_carlweb', created: t - 30 * DAY })));
  // Bob: failed, then Stripe's retry succeeded — recovered by the PSP.
  await ok(stack.sendStripe('acme', stripeEvents.paymentFailed(bob)));
  await ok(stack.sendStripe('acme', stripeEvents.paid({ ...bob, created: t - 3 * DAY })));
  // Eve: Stripe said it would retry, 40 days ago, and nothing came since — unexplained.
  await ok(stack.sendStripe('acme', stripeEvents.paymentFailed(eve)));
  // An event type the hub does not act on, and Anna's failure delivered a second time.
  await ok(stack.sendStripe('acme', stripeEvents.other('customer.created', t - 9 * DAY)));
  await ok(stack.sendStripe('acme', annaFailed));

  await waitFor(async () => (await stack.get('/v1/invoices/in_anna1')).body?.status === 'paid', 20_000, 100, "anna's invoice paid by the agency");
  await waitFor(async () => (await stack.get('/v1/invoices/in_carl2')).body?.case?.id, 20_000, 100, "carl's second invoice on his case");
  await waitFor(async () => (await stack.get('/v1/invoices/in_carlweb1')).body?.status === 'settled', 20_000, 100, "carl's web-shop invoice");
  await waitFor(async () => (await stack.get('/v1/invoices/in_bob1')).body?.status === 'recovered', 20_000, 100, "bob's invoice recovered");
  await waitFor(async () => (await stack.get('/v1/invoices/in_eve1')).body?.status === 'open', 20_000, 100, "eve's invoice open");
  await waitFor(async () => (await stack.get('/v1/sync-log?outcome=ignored')).body?.data?.length === 1, 20_000, 100, 'the ignored event');
  await waitFor(async () => (await stack.get('/v1/invoices/in_gx1', 'globex')).body?.case?.partnerRef, 20_000, 100, "günter's case accepted");
  await good.pushesSettled();

  // Dora: the agency no longer knows the hub's secret, answers 401, the delivery is dead-lettered.
  current = brokenUrl;
  await ok(stack.sendStripe('acme', stripeEvents.paymentFailed(dora)));
  const dead = await waitFor(async () => (await stack.get('/v1/deliveries?status=dead')).body?.data?.[0], 20_000, 100, 'a dead-lettered delivery');

  return {
    anna, carl1, carl2, bob, eve, dora, gx,
    deadDeliveryId: dead.id,
    good,
    broken,
    useAgency(which) {
      current = which === 'good' ? goodUrl : brokenUrl;
    },
    async stop() {
      await new Promise<void>((resolve) => {
        relay.close(() => resolve());
        relay.closeAllConnections();
      });
      await good.stop();
      await broken.stop();
    },
  };
}
