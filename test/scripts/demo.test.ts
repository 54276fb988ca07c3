/**
 * `npm run demo`: the seeded PSP history it replays — Stripe, Mollie, Adyen and GoCardless, each read
 * back through the hub's own connector (the Mollie and GoCardless ones with the API answers the
 * demo serves from its fakes), so the events mean to the hub what the stories say — and the demo
 * itself run end to end as a child process with `--once` on free ports and a temporary data
 * directory.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import {
  DEMO_PSPS,
  exampleCustomer,
  generateDemoEvents,
  summarizeDemoEvents,
  type AdyenDemoEvent,
  type DemoEvent,
  type GoCardlessDemoEvent,
  type MollieDemoEvent,
  type StripeDemoEvent,
} from '../../scripts/demo-data';
import { normalizeStripeEvent } from '../../connectors/psp/stripe/normalize';
import { normalizeWithLookup as normalizeMollie } from '../../connectors/psp/mollie';
import { mollieProviderConfigSchema } from '../../connectors/psp/mollie/schema';
import { adyenConnector } from '../../connectors/psp/adyen';
import { adyenProviderConfigSchema } from '../../connectors/psp/adyen/schema';
import { normalizeWithLookups as normalizeGoCardless } from '../../connectors/psp/gocardless';
import {
  gocardlessCustomerSchema,
  gocardlessMandateSchema,
  gocardlessPaymentSchema,
  gocardlessProviderConfigSchema,
} from '../../connectors/psp/gocardless/schema';
import { loadPspMapping } from '../../src/mappings/load';
import type { PaymentEvent } from '../../src/domain/types';

const ROOT = path.resolve(__dirname, '../..');
const NOW = new Date('2026-03-15T12:00:00Z');
const DAY = 86_400;
const SEPA_CODE = /^[A-Z]{2}\d{2}$/;

const mappings = { stripe: loadPspMapping('stripe'), mollie: loadPspMapping('mollie'), adyen: loadPspMapping('adyen'), gocardless: loadPspMapping('gocardless') };

function normalizeStripe(e: StripeDemoEvent): PaymentEvent {
  return normalizeStripeEvent(
    { providerEventId: e.event.id, eventType: e.event.type, payload: e.event },
    { merchantId: e.merchant, config: { webhookSecret: 'whsec_test', toleranceSeconds: 300 }, mapping: mappings.stripe },
  );
}

/** As the hub reads a classic Mollie webhook: the payment, its chargebacks and customer as the demo's fake Mollie serves them. */
function normalizeMollieEvent(e: MollieDemoEvent): Promise<PaymentEvent> {
  const payment = e.chargebacks.length > 0 ? { ...e.payment, _embedded: { chargebacks: e.chargebacks } } : e.payment;
  return normalizeMollie(
    { providerEventId: `${e.payment.id}:${e.at * 1000}`, eventType: 'payment', payload: { id: e.payment.id } },
    { merchantId: e.merchant, config: mollieProviderConfigSchema.parse({ apiKey: 'test_demo0123456789' }), mapping: mappings.mollie },
    {
      getPayment: async () => structuredClone(payment),
      listChargebacks: async () => structuredClone(e.chargebacks),
      getCustomer: async () => structuredClone(e.mollieCustomer),
    },
  );
}

function normalizeAdyenItem(e: AdyenDemoEvent): PaymentEvent {
  const item = e.item;
  return adyenConnector.normalize(
    { providerEventId: `${item.pspReference}:${item.eventCode}:${item.success}`, eventType: item.eventCode, occurredAt: new Date(item.eventDate).toISOString(), payload: { live: 'false', NotificationRequestItem: item } },
    { merchantId: e.merchant, config: adyenProviderConfigSchema.parse({ hmacKeys: '44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056', basicAuth: { username: 'ws', password: 'pw' } }), mapping: mappings.adyen },
  ) as PaymentEvent;
}

/** Each event of a GoCardless delivery, with the payment, mandate and customer the demo's fake GoCardless serves for it. */
function normalizeGoCardlessDelivery(e: GoCardlessDemoEvent): Promise<PaymentEvent[]> {
  const api = {
    getPayment: async (id: string) => {
      if (e.resources.payment?.id !== id) throw new Error(`the demo serves no payment ${id} for this delivery`);
      return gocardlessPaymentSchema.parse(e.resources.payment);
    },
    getMandate: async (id: string) => {
      if (e.resources.mandate.id !== id) throw new Error(`the demo serves no mandate ${id} for this delivery`);
      return gocardlessMandateSchema.parse(e.resources.mandate);
    },
    getCustomer: async (id: string) => {
      if (e.resources.customer.id !== id) throw new Error(`the demo serves no customer ${id} for this delivery`);
      return gocardlessCustomerSchema.parse(e.resources.customer);
    },
  };
  const ctx = { merchantId: e.merchant, config: gocardlessProviderConfigSchema.parse({ webhookSecret: 'gc_whsec_test', accessToken: 'sandbox_test' }), mapping: mappings.gocardless };
  return Promise.all(e.events.map((ev) => normalizeGoCardless({ providerEventId: ev.id, eventType: `${ev.resource_type}.${ev.action}`, payload: ev }, ctx, api)));
}

const amountOf = (e: DemoEvent): number => {
  switch (e.psp) {
    case 'stripe': {
      const o = e.event.data.object as { amount_due?: number; amount?: number };
      return o.amount_due ?? (o.amount as number);
    }
    case 'mollie':
      return Math.round(Number(e.payment.amount.value) * 100);
    case 'adyen':
      return e.item.amount.value;
    case 'gocardless':
      return e.resources.payment?.amount ?? NaN;
  }
};

describe('the demo data (scripts/demo-data.ts)', () => {
  const events = generateDemoEvents({ now: NOW });
  const originals = events.filter((e) => !e.duplicate);
  const of = <P extends DemoEvent['psp']>(psp: P) => originals.filter((e): e is Extract<DemoEvent, { psp: P }> => e.psp === psp);

  it('is the same list for the same seed and moment, and another list for another seed', () => {
    expect(generateDemoEvents({ now: NOW })).toEqual(events);
    expect(generateDemoEvents({ now: NOW, seed: 7 })).not.toEqual(events);
  });

  it('mixes all four PSPs in one time order, all in the past, over several monthly cycles', () => {
    const at = events.map((e) => e.at);
    expect(at).toEqual([...at].sort((a, b) => a - b));
    expect(Math.max(...at)).toBeLessThan(NOW.getTime() / 1000);
    expect((NOW.getTime() / 1000 - Math.min(...at)) / DAY).toBeGreaterThan(90);
    // Interleaved, not one PSP after another: each PSP's events span the whole period.
    for (const psp of DEMO_PSPS) {
      const mine = events.filter((e) => e.psp === psp).map((e) => e.at);
      expect((Math.max(...mine) - Math.min(...mine)) / DAY).toBeGreaterThan(80);
    }
    // The timestamps each PSP's payload carries are the replay time.
    for (const e of of('stripe')) expect(e.event.created).toBe(e.at);
    for (const e of of('adyen')) expect(Math.round(Date.parse(e.item.eventDate) / 1000)).toBe(e.at);
    for (const e of of('gocardless')) expect(Date.parse(e.events[0].created_at) / 1000).toBe(e.at);
  });

  it('has acme customers at Stripe, Mollie and GoCardless and globex customers at Stripe and Adyen, with subscription amounts', () => {
    const s = summarizeDemoEvents(events);
    expect(s.customers).toEqual({ acme: 38, globex: 14 });
    expect(s.byPsp.stripe.customers).toEqual({ acme: 18, globex: 6 });
    expect(s.byPsp.mollie.customers).toEqual({ acme: 10 });
    expect(s.byPsp.gocardless.customers).toEqual({ acme: 10 });
    expect(s.byPsp.adyen.customers).toEqual({ globex: 8 });
    expect(s.events).toBeGreaterThan(200);
    for (const psp of DEMO_PSPS) expect(s.byPsp[psp].webhooks).toBeGreaterThan(30);
    const amounts = new Set(originals.filter((e) => !e.type.startsWith('mandates.')).map(amountOf));
    expect([...amounts].sort()).toEqual([1499, 2900, 4900]);
  });

  it('has NL consumers whose final failure is past the 14-day hand-over period but inside the NL notice term (notice_gate)', () => {
    const gate = of('stripe').filter((e) => e.story === 'notice_gate');
    const finals = gate.filter((e) => e.finalFailure);
    expect(new Set(gate.map((e) => e.customer)).size).toBe(2);
    expect(finals).toHaveLength(2);
    for (const e of finals) {
      const ev = normalizeStripe(e);
      expect(ev).toMatchObject({ kind: 'payment_failed', customer: { country: 'NL', type: 'consumer' }, failure: { final: true } });
      const daysAgo = (NOW.getTime() / 1000 - e.at) / DAY;
      // Hand-over period (14 days) over; the letter (sent that day) delivered 2+ days later, then 14 days.
      expect(daysAgo).toBeGreaterThan(14);
      expect(daysAgo).toBeLessThan(16);
    }
    // Drawn from their own stream: the other customers are the same with or without them.
    const without = generateDemoEvents({ now: NOW, noticeGate: 0 }).filter((e) => !e.duplicate);
    expect(originals.filter((e) => e.story !== 'notice_gate').map((e) => e.key)).toEqual(without.map((e) => e.key));
  });

  it('delivers a few deliveries of every PSP twice, right after the original, with the same identity', () => {
    const dups = events.map((e, i) => ({ e, i })).filter(({ e }) => e.duplicate);
    expect(new Set(dups.map(({ e }) => e.psp))).toEqual(new Set(DEMO_PSPS));
    for (const { e, i } of dups) expect({ ...events[i - 1], duplicate: true }).toEqual(e);
    const keys = originals.map((e) => `${e.psp}:${e.key}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  describe('Stripe', () => {
    const stripe = of('stripe');
    const canonical = stripe.map((e) => ({ e, ev: normalizeStripe(e) }));

    it('mixes the legacy and the basil API shapes', () => {
      const versions = new Set(stripe.map((e) => e.event.api_version));
      expect(versions).toEqual(new Set(['2024-06-20', '2025-03-31.basil']));
      const basilInvoice = canonical.find(({ e }) => e.event.api_version === '2025-03-31.basil' && e.event.type === 'invoice.paid');
      expect(basilInvoice?.ev.invoice?.subscriptionRef).toMatch(/^sub_/);
    });

    it('has customers who pay, who recover after Stripe retries, who fail for good, get marked uncollectible and dispute', () => {
      const kinds = new Set(canonical.map(({ ev }) => ev.kind));
      expect(kinds).toEqual(new Set(['payment_succeeded', 'payment_failed', 'invoice_uncollectible', 'chargeback']));

      // Retries, then paid: a failure Stripe will retry, later the same invoice paid.
      const recovered = canonical.filter(({ e, ev }) => e.story === 'retries_recover' && ev.kind === 'payment_failed' && ev.failure?.final === false && ev.failure.nextAttemptAt);
      expect(recovered.length).toBeGreaterThan(0);
      for (const { e } of recovered.slice(0, 3)) {
        const later = stripe.filter((x) => x.invoice === e.invoice && x.at > e.at);
        expect(later.map((x) => x.event.type)).toContain('invoice.paid');
      }

      // Final failures with card declines and SEPA return codes, SEPA ones as SEPA debits.
      const finals = canonical.filter(({ ev }) => ev.kind === 'payment_failed' && ev.failure?.final === true);
      const codes = new Set(finals.map(({ ev }) => ev.failure!.code));
      for (const code of ['insufficient_funds', 'expired_card', 'AM04', 'MD01', 'AC04']) expect(codes).toContain(code);
      for (const { e, ev } of finals) {
        expect(e.finalFailure).toBe(true);
        if (SEPA_CODE.test(ev.failure!.code)) expect(ev.payment?.method).toBe('sepa_debit');
        else expect(ev.payment?.method).toBe('card');
        // MS03 is SEPA's "reason not specified": kept raw, reason unknown.
        if (ev.failure!.code !== 'MS03') expect(ev.failure!.reason).not.toBe('unknown');
      }
      expect(canonical.find(({ ev }) => ev.failure?.code === 'MD01')?.ev.failure?.reason).toBe('mandate_invalid');

      // Marked uncollectible after retries: that is what makes it final.
      const marked = canonical.filter(({ ev }) => ev.kind === 'invoice_uncollectible');
      expect(marked.length).toBeGreaterThan(0);
      for (const { e } of marked) {
        const before = canonical.filter(({ e: x }) => x.invoice === e.invoice && x.event.type === 'invoice.payment_failed');
        expect(before.length).toBeGreaterThan(0);
        expect(before.every(({ ev }) => ev.failure?.final === false)).toBe(true);
      }

      // A dispute of a payment that was made earlier, found by the payment intent.
      const disputes = canonical.filter(({ ev }) => ev.kind === 'chargeback');
      expect(disputes.length).toBeGreaterThanOrEqual(1);
      for (const { e, ev } of disputes) {
        const paid = canonical.find(({ e: x }) => x.invoice === e.invoice && x.event.type === 'invoice.paid' && x.at < e.at);
        expect(paid).toBeDefined();
        expect(paid!.ev.payment?.relatedRefs ?? [paid!.ev.payment?.ref]).toEqual(expect.arrayContaining(ev.payment?.relatedRefs ?? []));
      }

      // Most customers just pay.
      const s = summarizeDemoEvents(events);
      expect(s.byStory.pays_on_time).toBeGreaterThan(s.customers.acme / 3);
    });
  });

  describe('Mollie', () => {
    const mollie = of('mollie');
    let canonical: { e: MollieDemoEvent; ev: PaymentEvent }[];
    beforeAll(async () => {
      canonical = await Promise.all(mollie.map(async (e) => ({ e, ev: await normalizeMollieEvent(e) })));
    });

    it('is what the Mollie connector reads from the payments the fake serves: every fact of a customer payment, in the right kind', () => {
      expect(new Set(canonical.map(({ ev }) => ev.kind))).toEqual(new Set(['payment_succeeded', 'payment_failed', 'chargeback']));
      for (const { e, ev } of canonical) {
        // The connector names the invoice by the payment; `e.invoice` is the invoice it pays (a re-payment's is the first payment's).
        expect(ev).toMatchObject({ provider: 'mollie', invoice: { ref: e.payment.id, amountDue: { value: amountOf(e), currency: 'EUR' }, number: expect.stringMatching(/^ACME-/) } });
        expect(ev.customer).toMatchObject({ ref: e.customer, name: e.customerName, email: expect.stringContaining('@example.nl') });
        expect(ev.factKey).toBe(e.key);
        expect(Date.parse(ev.occurredAt) / 1000).toBe(e.at);
      }
    });

    it('keeps Mollie\u2019s lifecycle: a failed payment stays failed; the customer pays through a new payment with the invoice\u2019s metadata', () => {
      // Mollie: failed, expired, canceled and paid are definitive (a paid payment may still be charged back).
      const statuses = new Map<string, string[]>();
      for (const { e } of canonical) statuses.set(e.payment.id, [...(statuses.get(e.payment.id) ?? []), e.payment.status]);
      for (const [id, seen] of statuses) expect({ id, statuses: [...new Set(seen)] }).toEqual({ id, statuses: [seen[0]] });
      const repaid = canonical.filter(({ e, ev }) => ev.kind === 'payment_succeeded' && e.payment.id !== e.invoice);
      expect(new Set(repaid.map(({ e }) => e.story))).toEqual(new Set(['retries_recover', 'pays_after_handover']));
      for (const { e, ev } of repaid) {
        const failed = canonical.find(({ e: x }) => x.payment.id === e.invoice && x.payment.status === 'failed')!;
        expect(failed.e.at).toBeLessThan(e.at);
        expect(e.payment).toMatchObject({ method: 'ideal', sequenceType: 'oneoff', customerId: failed.e.payment.customerId, metadata: failed.e.payment.metadata, amount: failed.e.payment.amount });
        expect(ev.invoice?.number).toBe(failed.ev.invoice?.number);
      }
    });

    it('fails for good with the SEPA return codes AM04, MD01 and AC04, each mapped to a reason', () => {
      const finals = canonical.filter(({ e }) => e.story === 'final_failure' && e.finalFailure);
      expect(new Set(finals.map(({ ev }) => ev.failure!.code))).toEqual(new Set(['AM04', 'MD01', 'AC04']));
      for (const { ev } of finals) {
        expect(ev.failure).toMatchObject({ final: true, reason: expect.not.stringMatching(/^unknown$/) });
        expect(ev.payment?.method).toBe(SEPA_CODE.test(ev.failure!.code) ? 'sepa_debit' : 'card');
      }
      expect(finals.find(({ ev }) => ev.failure!.code === 'MD01')!.ev.failure!.reason).toBe('mandate_invalid');
      expect(finals.find(({ ev }) => ev.failure!.code === 'AC04')!.ev.failure!.reason).toBe('account_closed');
    });

    it('recovers a failed payment inside the hand-over period, pays another after it, and charges one back', () => {
      const failed = canonical.find(({ e, ev }) => e.story === 'retries_recover' && ev.kind === 'payment_failed')!;
      expect(failed.ev.failure).toMatchObject({ code: 'AM04', final: true });
      const paid = canonical.find(({ e, ev }) => e.invoice === failed.e.invoice && ev.kind === 'payment_succeeded' && e.at > failed.e.at)!;
      expect(paid.e.at - failed.e.at).toBeLessThan(14 * DAY);
      // Inside the hand-over period before the demo's now: the hub sees the recovery before a hand-over is due.
      expect(NOW.getTime() / 1000 - failed.e.at).toBeLessThan(14 * DAY);

      const late = canonical.filter(({ e }) => e.story === 'pays_after_handover');
      const lateFail = late.find(({ ev }) => ev.kind === 'payment_failed')!;
      const latePaid = late.find(({ e, ev }) => ev.kind === 'payment_succeeded' && e.invoice === lateFail.e.invoice)!;
      expect(latePaid.e.at - lateFail.e.at).toBeGreaterThan(14 * DAY);

      const chargeback = canonical.find(({ ev }) => ev.kind === 'chargeback')!;
      expect(chargeback.ev.failure).toMatchObject({ code: 'MD06', reason: 'disputed' });
      expect(canonical.some(({ e, ev }) => e.invoice === chargeback.e.invoice && ev.kind === 'payment_succeeded' && e.at < chargeback.e.at)).toBe(true);
    });
  });

  describe('Adyen', () => {
    const adyen = of('adyen');
    const canonical = adyen.map((e) => ({ e, ev: normalizeAdyenItem(e) }));

    it('is signed for globex\u2019s merchant account, with the shopper and the invoice as its references', () => {
      for (const { e, ev } of canonical) {
        expect(e.item.merchantAccountCode).toBe('GlobexECOM');
        expect(ev).toMatchObject({ provider: 'adyen', invoice: { ref: e.invoice, amountDue: { value: amountOf(e), currency: 'EUR' } } });
        expect(ev.customer?.ref).toBe(e.customer);
      }
    });

    it('refuses with Adyen refusal reasons, each mapped to a reason, and recovers one by the merchant\u2019s retry', () => {
      const refused = canonical.filter(({ e }) => e.type === 'AUTHORISATION:false' && e.story === 'final_failure');
      const reasons = new Set(refused.map(({ ev }) => ev.failure!.code));
      expect(reasons.size).toBeGreaterThanOrEqual(2);
      for (const r of reasons) expect(['Not enough balance', 'Expired Card', 'Blocked Card', 'Refused']).toContain(r);
      for (const { ev } of refused) expect(ev.failure).toMatchObject({ final: true, reason: expect.not.stringMatching(/^unknown$/) });

      const retry = canonical.find(({ e }) => e.story === 'retries_recover' && e.type === 'AUTHORISATION:false')!;
      const recovered = canonical.find(({ e, ev }) => e.invoice === retry.e.invoice && ev.kind === 'payment_succeeded' && e.at > retry.e.at)!;
      expect(recovered.e.item.pspReference).not.toBe(retry.e.item.pspReference);
      expect(recovered.e.at - retry.e.at).toBeLessThan(14 * DAY);
    });

    it('has a SEPA debit returned with AM04 — a final failure of the authorised payment, not a dispute — and a card dispute', () => {
      const ret = canonical.find(({ e }) => e.story === 'sepa_return' && e.item.eventCode === 'CHARGEBACK')!;
      expect(ret.ev).toMatchObject({ kind: 'payment_failed', failure: { code: 'AM04', reason: 'insufficient_funds', final: true }, payment: { method: 'sepa_debit' } });
      const auth = canonical.find(({ e }) => e.invoice === ret.e.invoice && e.type === 'AUTHORISATION:true')!;
      expect(ret.e.item.originalReference).toBe(auth.e.item.pspReference);

      const disputes = canonical.filter(({ e }) => e.story === 'disputes' && /CHARGEBACK/.test(e.item.eventCode));
      expect(disputes.map(({ e }) => e.item.eventCode)).toEqual(['NOTIFICATION_OF_CHARGEBACK', 'CHARGEBACK']);
      for (const { ev } of disputes) expect(ev).toMatchObject({ kind: 'chargeback', failure: { reason: 'disputed' } });
    });
  });

  describe('GoCardless', () => {
    const gocardless = of('gocardless');
    let canonical: { e: GoCardlessDemoEvent; evs: PaymentEvent[] }[];
    beforeAll(async () => {
      canonical = await Promise.all(gocardless.map(async (e) => ({ e, evs: await normalizeGoCardlessDelivery(e) })));
    });

    it('carries only links; what the fake serves for them gives the amount, the invoice and the customer', () => {
      for (const { e, evs } of canonical) {
        for (const ev of e.events) {
          expect(JSON.stringify(ev)).not.toMatch(/amount|currency|email|given_name/);
          for (const id of Object.values(ev.links as Record<string, string>)) expect(id).toMatch(/^(PM|MD|PO|SB)[0-9A-Z]{12}$/);
        }
        const [ev] = evs;
        expect(ev.customer).toMatchObject({ ref: e.customer, name: expect.any(String), country: expect.stringMatching(/^(NL|BE)$/) });
        if (ev.kind !== 'mandate_revoked') expect(ev.invoice).toMatchObject({ ref: e.invoice, amountDue: { value: amountOf(e), currency: 'EUR' } });
      }
    });

    it('fails for good with causes and SEPA reason codes AM04, MD01, AC04; retries and recovers; charges back; cancels a mandate', () => {
      const finals = canonical.filter(({ e }) => e.finalFailure).map(({ evs }) => evs[0]);
      expect(finals.every((ev) => ev.kind === 'payment_failed' && ev.failure?.final === true)).toBe(true);
      expect(new Set(finals.map((ev) => ev.detail?.reasonCode))).toEqual(new Set(['AM04', 'MD01', 'AC04']));
      expect(new Set(finals.map((ev) => `${ev.failure!.code} → ${ev.failure!.reason}`))).toEqual(
        new Set(['insufficient_funds → insufficient_funds', 'mandate_cancelled → mandate_invalid', 'bank_account_closed → account_closed']),
      );

      const retried = canonical.find(({ e, evs }) => e.story === 'retries_recover' && evs[0].kind === 'payment_failed')!;
      expect(retried.evs[0].failure).toMatchObject({ final: false, code: 'insufficient_funds' });
      expect(canonical.some(({ e, evs }) => e.invoice === retried.e.invoice && evs[0].kind === 'payment_succeeded' && e.at > retried.e.at)).toBe(true);

      const chargedBack = canonical.find(({ evs }) => evs[0].kind === 'chargeback')!;
      expect(chargedBack.evs[0].failure).toMatchObject({ code: 'refund_requested', reason: 'disputed' });

      const cancelled = canonical.find(({ e }) => e.story === 'mandate_cancelled' && e.type.startsWith('mandates.'))!;
      expect(cancelled.evs.map((ev) => ev.kind)).toEqual(['mandate_revoked', 'ignored']);
      expect(cancelled.evs[0]).toMatchObject({ customer: { ref: cancelled.e.customer }, failure: { code: 'bank_account_closed', reason: 'account_closed' }, detail: { reasonCode: 'AC04', mandateStatus: 'cancelled' } });
    });
  });

  it('names one customer per PSP with a final failure as the example to look at', () => {
    const examples = {
      stripe: exampleCustomer(events, 'acme', 'stripe'),
      mollie: exampleCustomer(events, 'acme', 'mollie'),
      gocardless: exampleCustomer(events, 'acme', 'gocardless'),
      adyen: exampleCustomer(events, 'globex', 'adyen'),
    };
    expect(examples.stripe).toMatchObject({ customer: expect.stringMatching(/^cus_/), invoice: expect.stringMatching(/^in_/) });
    expect(examples.mollie).toMatchObject({ customer: expect.stringMatching(/^cst_/), invoice: expect.stringMatching(/^tr_/) });
    expect(examples.gocardless).toMatchObject({ customer: expect.stringMatching(/^CU/), invoice: expect.stringMatching(/^PM/) });
    expect(examples.adyen).toMatchObject({ customer: expect.stringMatching(/^GLX-C-/), story: 'sepa_return' });
    for (const ex of Object.values(examples)) expect(originals.some((e) => e.invoice === ex!.invoice && e.finalFailure)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function runDemo(env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), ['scripts/demo.ts', '--once'], {
      cwd: ROOT,
      env: { ...process.env, DEMO_ONCE: '', DEMO_SEED: '', DEMO_STEP_MS: '', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the demo did not exit within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The summary's block for one agency: cases, statuses, arrangements, collection costs, notice gate. */
function agencyBlock(out: string, id: string) {
  const start = new RegExp(`^  ${id} \\((.*)\\) for (acme|globex), (http\\S+):$`, 'm').exec(out);
  if (!start) throw new Error(`no block for agency ${id} in:\n${out}`);
  const block = out.slice(start.index).split('\n').slice(1, 6).join('\n');
  const m = (re: RegExp) => {
    const x = re.exec(block);
    if (!x) throw new Error(`agency ${id}: no match for ${re} in:\n${block}`);
    return x;
  };
  const cases = m(/cases:\s+(\d+) at the hub \(([^)]*)\); (\d+) at the agency \(([^)]*)\)/);
  const statuses = m(/statuses:\s+invoices (.*)$/m);
  const arrangements = m(/arrangements:\s+(\d+) invoices \(([^)]*)\), (\d+) instalments paid/);
  const costs = m(/collection costs:\s+(\d+) cases, EUR (\d+\.\d\d); (\d+) cases at the agency carry them(?: \(([^)]*)\))?/);
  const gate = m(/notice gate:\s+(\d+) invoices waiting/);
  return {
    how: start[1], merchant: start[2],
    casesAtHub: Number(cases[1]), caseStatuses: cases[2], casesAtAgency: Number(cases[3]),
    invoiceStatuses: statuses[1],
    arrangements: Number(arrangements[1]), instalmentsPaid: Number(arrangements[3]),
    costCases: Number(costs[1]), costTotal: Number(costs[2]), costsSent: Number(costs[3]), costBases: costs[4] ?? '',
    waiting: Number(gate[1]),
  };
}

/** The summary's line for one PSP: what was sent and accepted, what the hub stored and handed over. */
function pspLine(out: string, psp: string) {
  const m = new RegExp(
    `^\\s+${psp}:\\s+(\\d+) customers \\(([^)]*)\\); (\\d+) webhooks sent, (\\d+) accepted; hub: (\\d+) events stored \\(([^)]*)\\); (\\d+) invoices in (\\d+) cases$`,
    'm',
  ).exec(out);
  if (!m) throw new Error(`no summary line for ${psp} in:\n${out}`);
  const statuses = Object.fromEntries(m[6].split(', ').map((kv) => { const [k, n] = kv.split(' '); return [k, Number(n)]; }));
  return { customers: Number(m[1]), sent: Number(m[3]), accepted: Number(m[4]), stored: Number(m[5]), statuses, invoicesInCases: Number(m[7]), cases: Number(m[8]) };
}

// Machines under load (CI) can be slow: the demo targets well under 30 s, the limit here is generous.
const RUN_TIMEOUT_MS = 150_000;

describe('npm run demo -- --once', () => {
  let dataDir: string;

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-demo-'));
  });
  afterEach(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('replays all four PSPs, hands the unpaid invoices to the agency, prints tokens and where to look, and exits 0', async () => {
    const [hubPort, simPort, rivertyPort] = [await freePort(), await freePort(), await freePort()];
    const run = await runDemo({ PORT: String(hubPort), DEMO_SIM_PORT: String(simPort), DEMO_RIVERTY_SIM_PORT: String(rivertyPort), DEMO_DATA_DIR: dataDir }, RUN_TIMEOUT_MS);
    const out = run.stdout;
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(run.stderr).not.toMatch(/webhook refused/);

    expect(out).toMatch(/replayed 25\/\d+/);
    expect(out).toMatch(/replaying \d+ webhooks \(stripe \d+, mollie \d+, adyen \d+, gocardless \d+\) in time order/);
    const sent = Number(/events sent:\s+(\d+) \((\d+) duplicates/.exec(out)?.[1]);
    expect(sent).toBeGreaterThan(200);
    expect(/customers:\s+acme (\d+), globex (\d+)/.exec(out)?.slice(1).map(Number)).toEqual([38, 14]);
    const cases = Number(/cases at agencies:\s+(\d+)/.exec(out)?.[1]);
    expect(cases).toBeGreaterThan(10);
    expect(out).toMatch(/outbox:\s+drained/);
    expect(out).toMatch(/acme invoices:.*submitted \d+/);
    expect(out).toMatch(/globex invoices:.*submitted \d+/);

    // Every PSP: all its webhooks accepted, stored and processed by the hub (the hub's own counts).
    const lines = Object.fromEntries(DEMO_PSPS.map((psp) => [psp, pspLine(out, psp)]));
    let total = 0;
    for (const psp of DEMO_PSPS) {
      const l = lines[psp];
      expect({ psp, accepted: l.accepted }).toEqual({ psp, accepted: l.sent });
      expect(l.sent).toBeGreaterThan(30);
      expect(l.stored).toBeGreaterThan(25);
      expect(l.statuses.processed).toBeGreaterThan(25);
      expect(Object.keys(l.statuses).filter((s) => !['processed', 'duplicate', 'ignored'].includes(s))).toEqual([]);
      total += l.sent;
    }
    expect(total).toBe(sent);
    // Cases at the agency for invoices of at least three PSPs (the demo's data has all four).
    const withCases = DEMO_PSPS.filter((psp) => lines[psp].invoicesInCases > 0 && lines[psp].cases > 0);
    expect(withCases.length).toBeGreaterThanOrEqual(3);

    const token = /export ACME_TOKEN=(\S+)/.exec(out)?.[1];
    expect(jwt.decode(token!)).toMatchObject({ sub: 'acme', aud: 'collection-hub', exp: expect.any(Number) });
    expect(jwt.decode(/export GLOBEX_TOKEN=(\S+)/.exec(out)![1])).toMatchObject({ sub: 'globex' });
    const hub = `http://127.0.0.1:${hubPort}`;
    for (const p of ['/v1/cases', '/v1/sync-log', '/v1/reports/leakage', '/metrics']) expect(out).toContain(`${hub}${p}`);
    expect(out).toContain(`http://127.0.0.1:${simPort}/_sim/cases`);
    expect(out).toContain(`http://127.0.0.1:${rivertyPort}/_sim/cases`);

    // Both agencies: acme's at the reference agency, globex's at the riverty-personality one (pulled).
    const ref = agencyBlock(out, 'refagency');
    const riv = agencyBlock(out, 'riverty');
    expect(ref).toMatchObject({ merchant: 'acme', how: expect.stringContaining('reference') });
    expect(riv).toMatchObject({ merchant: 'globex', how: expect.stringContaining('OAuth2') });
    for (const a of [ref, riv]) {
      expect(a.casesAtHub).toBeGreaterThan(2);
      expect(a.casesAtAgency).toBe(a.casesAtHub);
      // Arrangements agreed at the agency and instalments paid, synced back (riverty by the pull).
      expect(a.caseStatuses).toMatch(/arrangement \d+/);
      expect(a.arrangements).toBeGreaterThanOrEqual(2);
      expect(a.instalmentsPaid).toBeGreaterThanOrEqual(3);
      expect(a.invoiceStatuses).toMatch(/paid \d+/);
    }
    expect(ref.casesAtHub + riv.casesAtHub).toBe(cases);
    // Country rules: WIK costs computed for acme's NL consumers and sent with the cases.
    expect(ref.costCases).toBeGreaterThan(0);
    expect(ref.costTotal).toBeGreaterThanOrEqual(40);
    expect(ref.costsSent).toBe(ref.costCases);
    expect(ref.costBases).toMatch(/NL WIK \d+/);
    // ... and acme's NL consumers whose hand-over period is over wait on the 14-day letter.
    expect(ref.waiting).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/notice gate:\s+\d+ invoices waiting \(NL consumers: hand-over period over, the 14-day letter term runs until \d{4}-\d\d-\d\d/);

    // Through the merchant API (the demo's own calls): an arrangement per merchant with instalments paid, and the gated invoice.
    for (const m of ['acme', 'globex']) {
      expect(out).toMatch(new RegExp(`arrangement \\(${m}\\):\\s+customer 200, invoice \\S+ (running|completed): 3 instalments of EUR \\d+\\.\\d\\d, [1-3] paid, EUR \\d+\\.\\d\\d collected`));
    }
    expect(out).toMatch(/notice gate \(acme\):\s+invoice in_\w+ → 200, pending_handover, case none: hand-over due [\d-]+ [\d:]+ UTC, held until [\d-]+ [\d:]+ UTC \(NL consumer/);
    expect(out).toMatch(new RegExp(`-X POST .*${hub.replace(/[.]/g, '\\.')}/v1/invoices/in_\\w+/reminder`));

    // One example customer per PSP, with its URL, each handed over with its failure.
    const example = (psp: string, customer: RegExp, invoice: RegExp) => {
      const m = new RegExp(`^\\s+${psp} \\((acme|globex)\\):\\s+(.*)$`, 'm').exec(out);
      expect(m).not.toBeNull();
      expect(m![2]).toMatch(/customer 200, invoice (submitted|in_collection|paid)[^,]* \(failure \S+.* → \w+\), case cse_\w+/);
      expect(out).toMatch(new RegExp(`${hub}/v1/customers/${customer.source}`));
      expect(out).toMatch(new RegExp(`${hub}/v1/invoices/${invoice.source}`));
      return m![2];
    };
    example('stripe', /cus_\w+/, /in_\w+/);
    expect(example('mollie', /cst_\w+/, /tr_\w+/)).toMatch(/failure (AM04|MD01|AC04|card_expired) → /);
    expect(example('gocardless', /CU\w+/, /PM\w+/)).toMatch(/failure (insufficient_funds|mandate_cancelled|bank_account_closed) → /);
    // The Adyen SEPA return (AM04) became a case.
    expect(example('adyen', /GLX-C-\d+/, /GLX-[0-9A-F]+-\d+/)).toMatch(/a returned SEPA debit: customer 200, invoice \w+ \(failure AM04 → insufficient_funds\), case cse_/);
    expect(out).toMatch(/mandate cancelled:\s+.*\(gocardless, acme\): mandateStatus revoked, no case/);
    // Each example customer's payment-behaviour flags, each with its why (issue 17).
    expect(out).toMatch(/^ {4}(flags: none|flag (in_collection_now|broken_arrangement_12m|repeated_insufficient_funds|disputed_12m): \S.*\.)$/m);
    expect(out).toContain('→ 404 (checked: globex cannot see acme data)');
    // Screening a sign-up with that customer's e-mail: acme finds its debtor, globex nothing.
    expect(out).toMatch(/→ acme: dbt_\w+ by email, flags on: \S.*; globex: no match \(checked: screening never crosses merchants\)/);

    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
    expect(out).toContain('[demo] stopped');
    expect(await portIsFree(hubPort)).toBe(true);
    expect(await portIsFree(simPort)).toBe(true);
    expect(await portIsFree(rivertyPort)).toBe(true);
  }, RUN_TIMEOUT_MS + 10_000);

  it('stops with a clear message and a non-zero exit when its port is taken', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
    const taken = (holder.address() as net.AddressInfo).port;
    try {
      const run = await runDemo({ PORT: String(taken), DEMO_SIM_PORT: String(await freePort()), DEMO_RIVERTY_SIM_PORT: String(await freePort()), DEMO_DATA_DIR: dataDir }, 30_000);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`port ${taken} (hub) is already in use`);
      expect(run.stderr).toContain('PORT=<port>');
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  }, 35_000);
});
