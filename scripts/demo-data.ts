/**
 * The demo's PSP history: a few months of subscription payments for two merchants, as the
 * webhooks their PSPs would have sent. Pure and seeded — the same options give the same list, ids
 * included — so a demo run, a test and a bug report all see the same customers.
 *
 * Acme (NL) takes payments through Stripe, Mollie and GoCardless; Globex (DE) through Stripe and
 * Adyen. Each customer is with one PSP and follows one story for the whole period:
 *  - pays_on_time          every payment succeeds at the first attempt
 *  - retries_recover       a payment fails, then succeeds: Stripe's and GoCardless's own retries
 *                          (the failure says the PSP will retry); for Mollie the customer settles the
 *                          invoice through a new payment (a failed Mollie payment is final), for
 *                          Adyen the merchant's retry (a new pspReference on the same
 *                          merchantReference) is authorised — both inside the hand-over period
 *  - final_failure         from some cycle on, a payment fails for good: card declines, Adyen refusal
 *                          reasons, SEPA return codes (AM04, MD01, AC04 …); later payments fail too,
 *                          or the subscription ends
 *  - pays_after_handover   a final failure, then the customer pays through the PSP weeks later (at
 *                          Mollie through a new payment carrying the invoice's metadata)
 *  - marked_uncollectible  (Stripe) retries, then the merchant's dunning settings mark the invoice uncollectible
 *  - disputes              pays, then disputes one payment with the bank (Stripe dispute, Mollie and
 *                          Adyen chargeback, GoCardless charged_back)
 *  - sepa_return           (Adyen) a SEPA debit is authorised, then returned by the bank (AM04), which
 *                          Adyen reports as a CHARGEBACK: the debt is still owed
 *  - mandate_cancelled     (GoCardless) the customer's bank cancels the mandate (account closed, AC04)
 *  - notice_gate           (Stripe, acme) an NL consumer whose card failed for good about 15 days ago:
 *                          acme's 14-day hand-over period has passed, but the NL 14-day letter term
 *                          (country rules, counted from the letter's delivery) has not — the invoice
 *                          waits on the notice gate. Drawn from a stream of its own, so the other
 *                          customers are the same with or without them.
 *
 * Shapes: Stripe events from sim/psp/stripe-events.ts (Acme's endpoint moved to API version
 * 2025-03-31.basil some weeks ago, Globex is on the legacy one); Mollie payments as the Mollie API
 * answers them (the demo serves them from the local fake Mollie and posts the classic `id=tr_…`
 * webhook); Adyen NotificationRequestItems (signed at replay); GoCardless events, which carry only
 * links, with the payment, mandate and customer the local fake GoCardless serves for them. A few
 * deliveries are repeated, as PSPs do when an acknowledgement is lost.
 */
import { mulberry32, type Prng } from '../sim/agency-sim/prng';
import { stripeEvents, type InvoiceFacts, type InvoiceShape } from '../sim/psp/stripe-events';
import { mollieChargeback, mollieCustomer, molliePayments } from '../sim/psp/mollie-events';
import { adyenDate, adyenItems, type AdyenFacts, type AdyenItem } from '../sim/psp/adyen-events';
import { gocardlessEvents, gocardlessResources } from '../sim/psp/gocardless-events';

type Json = Record<string, any>;

export type DemoMerchant = 'acme' | 'globex';
export const DEMO_MERCHANTS: readonly DemoMerchant[] = ['acme', 'globex'];
export const DEMO_PSPS = ['stripe', 'mollie', 'adyen', 'gocardless'] as const;
export type DemoPsp = (typeof DEMO_PSPS)[number];

export const CUSTOMER_STORIES = [
  'pays_on_time',
  'retries_recover',
  'final_failure',
  'pays_after_handover',
  'marked_uncollectible',
  'disputes',
  'sepa_return',
  'mandate_cancelled',
  'notice_gate',
] as const;
export type CustomerStory = (typeof CUSTOMER_STORIES)[number];

/** A Stripe event envelope as `sim/psp/stripe-events.ts` builds it. */
export type StripeEvent = ReturnType<typeof stripeEvents.paid>;

interface DemoEventBase {
  merchant: DemoMerchant;
  psp: DemoPsp;
  /** When it happened at the PSP (unix seconds): the replay order. */
  at: number;
  /**
   * What happened, in the PSP's words: the Stripe event type, the Mollie fact (`payment.failed`,
   * `payment.chargeback`), the Adyen event code (`AUTHORISATION:false`), the GoCardless event type
   * (the first of a batch).
   */
  type: string;
  /** The PSP's identity of the delivery, the same for a redelivery. */
  key: string;
  /** The PSP's customer and invoice refs (the ones the hub's API finds them by). */
  customer: string;
  customerName: string;
  invoice: string;
  story: CustomerStory;
  /** A payment failure the PSP will not retry: what may go to the agency. */
  finalFailure?: boolean;
  /** This delivery repeats an earlier one, as PSPs do when an acknowledgement is lost. */
  duplicate: boolean;
}

export interface StripeDemoEvent extends DemoEventBase {
  psp: 'stripe';
  event: StripeEvent;
}

/** A classic Mollie webhook (`id=<payment.id>`) and what the Mollie API answers from then on. */
export interface MollieDemoEvent extends DemoEventBase {
  psp: 'mollie';
  payment: Json;
  mollieCustomer: Json;
  chargebacks: Json[];
}

export interface AdyenDemoEvent extends DemoEventBase {
  psp: 'adyen';
  /** Unsigned; the demo signs it with the merchant's HMAC key when it sends it. */
  item: AdyenItem;
}

/** A GoCardless delivery (a batch of events, links only) and the resources the API serves for it. */
export interface GoCardlessDemoEvent extends DemoEventBase {
  psp: 'gocardless';
  events: Json[];
  webhookId: string;
  resources: { payment?: Json; mandate: Json; customer: Json };
}

export type DemoEvent = StripeDemoEvent | MollieDemoEvent | AdyenDemoEvent | GoCardlessDemoEvent;

export interface DemoCustomer {
  merchant: DemoMerchant;
  psp: DemoPsp;
  id: string;
  name: string;
  email: string;
  country: string;
  story: CustomerStory;
  method: 'card' | 'sepa_debit';
  /** The raw failure code of its final failures, when its story has them. */
  failureCode?: string;
  amount: number;
  subscription: string;
}

export type DemoCustomerCounts = Record<DemoMerchant, Partial<Record<DemoPsp, number>>>;

export interface DemoDataOptions {
  /** Everything happens before this moment (the demo passes the current time). */
  now: Date;
  seed?: number;
  /** Monthly billing cycles, the last one ending before `now`. */
  cycles?: number;
  /** Customers per merchant and PSP; a merchant given here gets exactly these PSPs. */
  customers?: Partial<DemoCustomerCounts>;
  /** Deliveries repeated, spread over the PSPs. */
  duplicates?: number;
  /** Acme Stripe customers (NL consumers) whose invoice waits on the notice gate now (story notice_gate). */
  noticeGate?: number;
}

/** Acme takes payments through Stripe, Mollie and GoCardless; Globex through Stripe and Adyen. */
export const DEMO_DEFAULTS: { seed: number; cycles: number; duplicates: number; noticeGate: number; customers: DemoCustomerCounts } = {
  seed: 42,
  cycles: 4,
  duplicates: 8,
  noticeGate: 2,
  customers: { acme: { stripe: 16, mollie: 10, gocardless: 10 }, globex: { stripe: 6, adyen: 8 } },
};

/** Globex's Adyen merchant account (its webhook config names it; every item carries it). */
export const ADYEN_MERCHANT_ACCOUNT = 'GlobexECOM';

const DAY = 86_400;
const HOUR = 3_600;
const CYCLE_DAYS = 30;
/** Stripe's retry schedule after a failed renewal (days after the first attempt), as a Smart Retries policy spreads it. */
const RETRY_DAYS = [3, 5, 7];
const PLAN_AMOUNTS = [1499, 2900, 4900];
/** Acme's webhook endpoint moved to the basil API version this many days before `now`. */
const ACME_BASIL_SINCE_DAYS = 45;
const BASIL_VERSION = '2025-03-31.basil';
const LEGACY_VERSION = '2024-06-20';

/** Final-failure codes handed out in turn, so every kind appears whatever the seed. SEPA codes are SEPA debits. */
const FINAL_CODES: { code: string; method: 'card' | 'sepa_debit' }[] = [
  { code: 'insufficient_funds', method: 'card' },
  { code: 'expired_card', method: 'card' },
  { code: 'AM04', method: 'sepa_debit' },
  { code: 'MD01', method: 'sepa_debit' },
  { code: 'AC04', method: 'sepa_debit' },
  { code: 'do_not_honor', method: 'card' },
  { code: 'lost_card', method: 'card' },
  // SEPA's "reason not specified": the hub keeps the raw code with reason `unknown`.
  { code: 'MS03', method: 'sepa_debit' },
];
/** Hard declines, a missing mandate, a closed account: retrying cannot help, so Stripe does not retry. */
const HARD_CODES = new Set(['expired_card', 'lost_card', 'MD01', 'AC04']);
/** Soft declines seen before a retry succeeds. */
const SOFT_CODES: { code: string; method: 'card' | 'sepa_debit' }[] = [
  { code: 'insufficient_funds', method: 'card' },
  { code: 'do_not_honor', method: 'card' },
  { code: 'try_again_later', method: 'card' },
  { code: 'AM04', method: 'sepa_debit' },
];
const DISPUTE_REASONS = ['fraudulent', 'product_not_received', 'subscription_canceled'];

/** Mollie: the bank's SEPA R-code (`details.bankReasonCode`) or the card's `details.failureReason`. */
const MOLLIE_FINAL_CODES: { code: string; method: 'card' | 'sepa_debit' }[] = [
  { code: 'AM04', method: 'sepa_debit' },
  { code: 'MD01', method: 'sepa_debit' },
  { code: 'AC04', method: 'sepa_debit' },
  { code: 'card_expired', method: 'card' },
];
const MOLLIE_BANK_REASONS: Record<string, string> = { AM04: 'Insufficient funds', MD01: 'No mandate', AC04: 'Account closed' };

/** GoCardless: `details.cause` with the SEPA `reason_code` the bank gave (psp-webhooks.md §4.1, §4.4). */
const GOCARDLESS_FINAL_CODES: { cause: string; reasonCode: string; description?: string }[] = [
  { cause: 'insufficient_funds', reasonCode: 'AM04' },
  { cause: 'mandate_cancelled', reasonCode: 'MD01', description: 'The mandate for this payment was cancelled at the bank (no valid mandate).' },
  { cause: 'bank_account_closed', reasonCode: 'AC04', description: "The customer's bank account was closed." },
];

/** Adyen refusal reasons (`reason` of a refused AUTHORISATION, psp-webhooks.md §3.4). */
const ADYEN_FINAL_REASONS = ['Not enough balance', 'Expired Card', 'Blocked Card', 'Refused'];
const ADYEN_SOFT_REASONS = new Set(['Not enough balance', 'Refused']);
/** Card scheme dispute reason codes: Visa 10.4 (fraud, card absent), Mastercard 4837 (no cardholder authorisation). */
const ADYEN_DISPUTES: Record<string, { code: string; reason: string }> = {
  visa: { code: '10.4', reason: 'Other Fraud-Card Absent Environment' },
  mc: { code: '4837', reason: 'No Cardholder Authorization' },
};

const NAMES: Record<DemoMerchant, { first: string[]; last: string[]; domain: string; countries: string[]; cities: string[] }> = {
  acme: {
    first: ['Daan', 'Sem', 'Lucas', 'Emma', 'Julia', 'Sophie', 'Noah', 'Tess', 'Anna', 'Fleur', 'Milan', 'Bram', 'Lotte', 'Sanne', 'Jeroen', 'Marieke', 'Pieter', 'Femke', 'Joost', 'Ilse', 'Thijs', 'Eva', 'Ruben', 'Niels'],
    last: ['de Vries', 'Jansen', 'van den Berg', 'Bakker', 'Visser', 'Smit', 'Meijer', 'de Boer', 'Mulder', 'de Groot', 'Bos', 'Vos', 'Peters', 'Hendriks', 'van Dijk', 'Dekker', 'Brouwer', 'van Leeuwen', 'Kok', 'Jacobs'],
    domain: 'example.nl',
    countries: ['NL', 'NL', 'NL', 'NL', 'NL', 'NL', 'BE'],
    cities: ['Amsterdam', 'Rotterdam', 'Utrecht', 'Den Haag', 'Eindhoven', 'Groningen', 'Haarlem'],
  },
  globex: {
    first: ['Lukas', 'Leon', 'Finn', 'Mia', 'Hannah', 'Lena', 'Jonas', 'Felix', 'Marie', 'Sophia', 'Paul', 'Clara'],
    last: ['Müller', 'Schmidt', 'Schneider', 'Fischer', 'Weber', 'Meyer', 'Wagner', 'Becker', 'Hoffmann', 'Schulz', 'Köhler', 'Groß'],
    domain: 'example.de',
    countries: ['DE', 'DE', 'DE', 'DE', 'AT'],
    cities: ['Berlin', 'Hamburg', 'München', 'Köln', 'Frankfurt am Main', 'Leipzig'],
  },
};

const ID_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const UPPER_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function randomString(prng: Prng, length: number, alphabet = ID_ALPHABET): string {
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[prng.int(alphabet.length)];
  return s;
}

/** `cus_…`, `in_…`, `evt_…` (Stripe); `tr_…`, `cst_…` (Mollie) — prefix, underscore, alphanumerics. */
function stripeId(prng: Prng, prefix: string, length: number): string {
  return `${prefix}_${randomString(prng, length)}`;
}

/** GoCardless ids: a two-letter prefix and 12 upper-case alphanumerics (`PM01…`, `MD…`, `CU…`, `EV…`). */
function gocardlessRef(prng: Prng, prefix: 'PM' | 'MD' | 'CU' | 'EV' | 'SB' | 'PO' | 'WB'): string {
  return `${prefix}${randomString(prng, 12, UPPER_ALPHABET)}`;
}

/** 32-bit FNV-1a of a text: the seed of a stream of its own, derived from an id. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function digits(prng: Prng, n: number): string {
  return randomString(prng, n, '0123456789');
}

/** A well-formed IBAN (ISO 13616 check digits) for the customer's country. */
function ibanFor(prng: Prng, country: string): string {
  const bban =
    country === 'NL' ? `${prng.pick(['INGB', 'RABO', 'ABNA', 'SNSB'])}0${digits(prng, 9)}`
    : country === 'BE' ? digits(prng, 12)
    : country === 'AT' ? digits(prng, 16)
    : digits(prng, 18); // DE: 8-digit bank code + 10-digit account
  const numeric = `${bban}${country}00`.replace(/[A-Z]/g, (ch) => String(ch.charCodeAt(0) - 55));
  let rest = 0;
  for (const d of numeric) rest = (rest * 10 + Number(d)) % 97;
  return `${country}${String(98 - rest).padStart(2, '0')}${bban}`;
}

function emailOf(name: string, domain: string): string {
  const ascii = name
    .toLowerCase()
    .replace(/ä/g, 'ae').replace(/ö/g, 'oe').replace(/ü/g, 'ue').replace(/ß/g, 'ss')
    .replace(/[^a-z ]/g, '');
  const [first, ...rest] = ascii.split(' ');
  return `${first}.${rest.join('')}@${domain}`;
}

const isoAt = (sec: number) => new Date(sec * 1000).toISOString();
/** Mollie's timestamp style: `2024-06-03T09:12:00+00:00`. */
const mollieTime = (sec: number) => isoAt(sec).replace(/\.\d{3}Z$/, '+00:00');
const dayOf = (sec: number) => isoAt(sec).slice(0, 10);
/** Minor units → Mollie's decimal string (EUR: two decimals). */
const decimal = (minor: number) => (minor / 100).toFixed(2);

/** How many customers of each story `n` customers of a merchant on a PSP get; the rest pay on time. */
function storyDeck(psp: DemoPsp, merchant: DemoMerchant, n: number): CustomerStory[] {
  const share = (f: number, min: number) => Math.max(min, Math.round(n * f));
  const fill = (...parts: [CustomerStory, number][]): CustomerStory[] => parts.flatMap(([s, k]) => Array<CustomerStory>(k).fill(s));
  let deck: CustomerStory[];
  switch (psp) {
    case 'stripe':
      deck = fill(
        ['retries_recover', share(0.17, 1)],
        ['final_failure', share(0.2, 2)],
        ['pays_after_handover', merchant === 'acme' ? 1 : 0],
        ['marked_uncollectible', share(0.08, 1)],
        ['disputes', merchant === 'acme' ? share(0.05, 1) : 0],
      );
      break;
    case 'mollie':
      deck = fill(['final_failure', share(0.3, 3)], ['retries_recover', share(0.1, 1)], ['disputes', 1], ['pays_after_handover', 1]);
      break;
    case 'gocardless':
      deck = fill(['final_failure', share(0.3, 3)], ['retries_recover', share(0.15, 1)], ['disputes', 1], ['mandate_cancelled', 1]);
      break;
    case 'adyen':
      deck = fill(['final_failure', share(0.25, 2)], ['sepa_return', 1], ['retries_recover', share(0.1, 1)], ['disputes', 1]);
      break;
  }
  deck = deck.slice(0, n);
  while (deck.length < n) deck.push('pays_on_time');
  return deck;
}

type EventDraft<E extends DemoEvent = DemoEvent> = Omit<E, 'duplicate' | 'merchant' | 'customer' | 'customerName' | 'story'>;

/** What every PSP's history writer shares: the clock, the seeded numbers, and where events go. */
interface Gen {
  prng: Prng;
  cycles: number;
  nowSec: number;
  /** Nothing after this: every event is history by the time it is replayed. */
  latest: number;
  turns: Record<DemoPsp, number>;
}

/** One customer's subscription: when it renews, and in which cycle things go wrong. */
interface Schedule {
  anchor: number;
  troubleCycle: number;
  secondTrouble: number;
  keepsFailing: boolean;
  business: boolean;
  numberPrefix: string;
  /** Unix seconds of cycle k's renewal. */
  start(k: number): number;
}

function schedule(g: Gen, story: CustomerStory, recentRecovery: boolean): Schedule {
  const { prng, cycles, nowSec } = g;
  const business = prng.next() < 0.1;
  const numberPrefix = Array.from({ length: 8 }, () => '0123456789ABCDEF'[prng.int(16)]).join('');
  // The subscription renews on the same day each cycle; anchors spread renewals over the month.
  let anchor = prng.int(CYCLE_DAYS - 3) * DAY + prng.int(20) * HOUR;
  // The cycle where things go wrong. A retry can be in any cycle (in the last one the PSP may still
  // be retrying); a final failure, an uncollectible mark or a dispute happens a month or two back,
  // so its story is complete and its hand-over due — later invoices of the customer come after it.
  let troubleCycle = story === 'retries_recover' ? prng.int(cycles) : Math.max(0, cycles - 2 - prng.int(2));
  const secondTrouble = story === 'retries_recover' && prng.next() < 0.4 ? prng.int(cycles) : -1;
  const keepsFailing = prng.next() < 0.5; // final failure: later invoices fail too (stacked), or the subscription ends
  if (recentRecovery) {
    // A failure the PSP will not retry is handed over 14 days after it; a recovery must come inside
    // that period. So this one renews 10–13 days before now and recovers a few days later.
    anchor = (CYCLE_DAYS - 3 - (10 + prng.int(4))) * DAY + prng.int(20) * HOUR;
    troubleCycle = cycles - 1;
  }
  return {
    anchor,
    troubleCycle,
    secondTrouble: recentRecovery ? -1 : secondTrouble,
    keepsFailing,
    business,
    numberPrefix,
    start: (k) => nowSec - (cycles - k) * CYCLE_DAYS * DAY + anchor + 3 * DAY,
  };
}

/** The whole history, oldest first (by `at`). */
export function generateDemoEvents(options: DemoDataOptions): DemoEvent[] {
  const seed = options.seed ?? DEMO_DEFAULTS.seed;
  const cycles = options.cycles ?? DEMO_DEFAULTS.cycles;
  const counts: DemoCustomerCounts = { ...DEMO_DEFAULTS.customers, ...(options.customers ?? {}) };
  const duplicates = options.duplicates ?? DEMO_DEFAULTS.duplicates;
  const nowSec = Math.floor(options.now.getTime() / 1000);
  const prng = mulberry32(seed);
  const g: Gen = { prng, cycles, nowSec, latest: nowSec - 600, turns: { stripe: 0, mollie: 0, adyen: 0, gocardless: 0 } };
  const drafts: { event: DemoEvent; order: number }[] = [];
  let order = 0;

  for (const merchant of DEMO_MERCHANTS) {
    const names = NAMES[merchant];
    const usedNames = new Set<string>();
    for (const psp of DEMO_PSPS) {
      const n = counts[merchant][psp] ?? 0;
      if (n <= 0) continue;
      const deck = prng.shuffle(storyDeck(psp, merchant, n));
      for (const story of deck) {
        let name: string;
        do name = `${prng.pick(names.first)} ${prng.pick(names.last)}`;
        while (usedNames.has(name) && usedNames.size < names.first.length * names.last.length);
        usedNames.add(name);
        const customer: DemoCustomer = {
          merchant,
          psp,
          id: '',
          name,
          email: emailOf(name, names.domain),
          country: prng.pick(names.countries),
          story,
          method: 'card',
          amount: prng.pick(PLAN_AMOUNTS),
          subscription: '',
        };
        const emit = (e: EventDraft) => {
          if (e.at > g.latest) return;
          drafts.push({ event: { ...e, merchant, psp, customer: customer.id, customerName: customer.name, story, duplicate: false } as DemoEvent, order: order++ });
        };
        if (psp === 'stripe') stripeHistory(g, customer, emit);
        else if (psp === 'mollie') mollieHistory(g, customer, emit);
        else if (psp === 'adyen') adyenHistory(g, customer, emit);
        else gocardlessHistory(g, customer, names.cities, emit);
      }
    }
  }

  // The notice-gate customers, from a stream of their own (the customers above stay as they were).
  const gate: Gen = { ...g, prng: mulberry32((seed ^ 0x4e4c0e14) >>> 0), turns: { ...g.turns } };
  const gateNames = new Set<string>(drafts.filter((d) => d.event.merchant === 'acme').map((d) => d.event.customerName));
  for (let i = 0; i < (options.noticeGate ?? DEMO_DEFAULTS.noticeGate); i++) {
    let name: string;
    do name = `${gate.prng.pick(NAMES.acme.first)} ${gate.prng.pick(NAMES.acme.last)}`;
    while (gateNames.has(name));
    gateNames.add(name);
    const customer: DemoCustomer = {
      merchant: 'acme', psp: 'stripe', id: '', name, email: emailOf(name, NAMES.acme.domain), country: 'NL', story: 'notice_gate',
      method: 'card', amount: gate.prng.pick(PLAN_AMOUNTS), subscription: '',
    };
    noticeGateHistory(gate, customer, (e) => {
      if (e.at > gate.latest) return;
      drafts.push({ event: { ...e, merchant: 'acme', psp: 'stripe', customer: customer.id, customerName: customer.name, story: 'notice_gate', duplicate: false } as DemoEvent, order: order++ });
    });
  }

  drafts.sort((a, b) => a.event.at - b.event.at || a.order - b.order);
  const events: DemoEvent[] = drafts.map((d) => d.event);

  // Redeliveries: the same delivery again, right after the original (same time, so the order
  // holds), spread over the PSPs.
  const picked: number[] = [];
  for (let i = 0; i < DEMO_PSPS.length; i++) {
    const psp = DEMO_PSPS[i];
    const take = Math.floor(duplicates / DEMO_PSPS.length) + (i < duplicates % DEMO_PSPS.length ? 1 : 0);
    const candidates = events.map((e, j) => ({ e, j })).filter(({ e }) => e.psp === psp).map(({ j }) => j);
    picked.push(...prng.shuffle(candidates).slice(0, take));
  }
  for (const i of picked.sort((a, b) => b - a)) events.splice(i + 1, 0, { ...events[i], duplicate: true });
  return events;
}

// ---------------------------------------------------------------------------------------------
// Stripe: invoices, Smart Retries, uncollectible marks, disputes.

function stripeHistory(g: Gen, customer: DemoCustomer, emit: (e: EventDraft<StripeDemoEvent>) => void): void {
  const { prng, cycles, nowSec, latest } = g;
  const story = customer.story;
  const final = story === 'final_failure' || story === 'pays_after_handover' ? FINAL_CODES[g.turns.stripe++ % FINAL_CODES.length] : undefined;
  const soft = prng.pick(SOFT_CODES);
  customer.method = final?.method ?? (story === 'retries_recover' || story === 'marked_uncollectible' ? soft.method : customer.merchant === 'globex' || prng.next() < 0.3 ? 'sepa_debit' : 'card');
  customer.failureCode = final?.code;
  customer.id = stripeId(prng, 'cus', 14);
  customer.subscription = stripeId(prng, 'sub', 24);
  const s = schedule(g, story, false);

  const shapeAt = (created: number): InvoiceShape =>
    customer.merchant === 'acme' && created >= nowSec - ACME_BASIL_SINCE_DAYS * DAY ? 'basil' : 'legacy';
  const push = (invoice: string, event: StripeEvent, created: number, finalFailure = false) => {
    // The endpoint's API version decides the envelope of every event type, disputes included.
    event.api_version = shapeAt(created) === 'basil' ? BASIL_VERSION : LEGACY_VERSION;
    event.id = stripeId(prng, 'evt', 24);
    emit({ psp: 'stripe', at: created, type: event.type, key: event.id, invoice, event, ...(finalFailure ? { finalFailure } : {}) });
  };

  let subscriptionEnded = false;
  for (let k = 0; k < cycles && !subscriptionEnded; k++) {
    const start = s.start(k);
    if (start > latest) break;
    const invoice = stripeId(prng, 'in', 24);
    const facts = (created: number, extra: Partial<InvoiceFacts> = {}): InvoiceFacts => ({
      invoice,
      customer: customer.id,
      amount: customer.amount,
      number: `${s.numberPrefix}-${String(k + 1).padStart(4, '0')}`,
      subscription: customer.subscription,
      customerName: customer.name,
      customerEmail: customer.email,
      country: customer.country,
      method: customer.method,
      business: s.business,
      created,
      shape: shapeAt(created),
      ...extra,
    });
    const at = (days: number) => start + Math.round(days * DAY) + prng.int(40) * 60;
    /** Failed attempts on Stripe's retry schedule; the last one is final when `lastIsFinal`. Returns its time, or null when history ends first. */
    const failures = (code: string, attempts: number, lastIsFinal: boolean): number | null => {
      let last: number | null = null;
      for (let a = 0; a < attempts; a++) {
        const created = a === 0 ? start + 60 : at(RETRY_DAYS[a - 1]);
        if (created > latest) return null; // history ends while Stripe is still retrying
        const isLast = a === attempts - 1;
        const next = isLast && lastIsFinal ? null : start + RETRY_DAYS[a] * DAY + 2 * HOUR;
        push(invoice, stripeEvents.paymentFailed(facts(created, { attempt: a + 1, nextPaymentAttempt: next, failureCode: code })), created, next === null);
        last = created;
      }
      return last;
    };
    const paid = (created: number, attempt = 1) => {
      if (created > latest) return;
      push(invoice, stripeEvents.paid(facts(created, { attempt })), created);
    };

    const trouble = k === s.troubleCycle || k === s.secondTrouble;
    switch (story) {
      case 'retries_recover': {
        if (!trouble) {
          paid(start + 60);
          break;
        }
        const failedAttempts = 1 + prng.int(2);
        const code = customer.method === 'sepa_debit' ? 'AM04' : soft.code === 'AM04' ? 'insufficient_funds' : soft.code;
        if (failures(code, failedAttempts, false) !== null) paid(at(RETRY_DAYS[failedAttempts - 1]), failedAttempts + 1);
        break;
      }
      case 'final_failure':
      case 'pays_after_handover': {
        if (k < s.troubleCycle) {
          paid(start + 60);
          break;
        }
        const code = customer.failureCode!;
        const attempts = HARD_CODES.has(code) ? 1 : RETRY_DAYS.length + 1;
        const finalAt = failures(code, attempts, true);
        if (story === 'pays_after_handover' && finalAt !== null) paid(finalAt + (18 + prng.int(6)) * DAY, attempts + 1);
        if (story === 'pays_after_handover' || !s.keepsFailing) subscriptionEnded = true;
        break;
      }
      case 'marked_uncollectible': {
        if (k !== s.troubleCycle) {
          paid(start + 60);
          break;
        }
        const code = customer.method === 'sepa_debit' ? 'AM04' : 'insufficient_funds';
        const lastFailure = failures(code, RETRY_DAYS.length, false);
        // Retries exhausted: the dunning settings mark the invoice uncollectible and end the subscription.
        const markedAt = lastFailure === null ? null : at(RETRY_DAYS[RETRY_DAYS.length - 1] + 2);
        if (markedAt !== null && markedAt <= latest) {
          push(invoice, stripeEvents.markedUncollectible(facts(markedAt, { attempt: RETRY_DAYS.length, failureCode: code })), markedAt);
          subscriptionEnded = true;
        }
        break;
      }
      case 'disputes': {
        paid(start + 60);
        if (k === s.troubleCycle) {
          const disputedAt = at(10 + prng.int(15));
          if (disputedAt <= latest) push(invoice, stripeEvents.disputeCreated({ ...facts(disputedAt), reason: prng.pick(DISPUTE_REASONS) }), disputedAt);
        }
        break;
      }
      default:
        paid(start + 60);
    }
  }
}

/**
 * An NL consumer at acme's Stripe who pays every month, until the last renewal's card payment fails
 * for good (expired card: Stripe does not retry) 15 days and a few hours ago. The hand-over period
 * (14 days) has passed; the debtor's 14-day letter term has not: it starts the day after the letter
 * counts as delivered (the second day after dispatch, Sundays and Mondays not counted), so it ends
 * at least 17 days after the letter — which acme's dunning sent the day of the failure.
 */
function noticeGateHistory(g: Gen, customer: DemoCustomer, emit: (e: EventDraft<StripeDemoEvent>) => void): void {
  const { prng, cycles, nowSec } = g;
  customer.id = stripeId(prng, 'cus', 14);
  customer.subscription = stripeId(prng, 'sub', 24);
  customer.failureCode = 'expired_card';
  const numberPrefix = Array.from({ length: 8 }, () => '0123456789ABCDEF'[prng.int(16)]).join('');
  const failedAt = nowSec - 15 * DAY - prng.int(6) * HOUR - prng.int(60) * 60;
  for (let k = 0; k < cycles; k++) {
    const created = failedAt - (cycles - 1 - k) * CYCLE_DAYS * DAY;
    const last = k === cycles - 1;
    const shape: InvoiceShape = created >= nowSec - ACME_BASIL_SINCE_DAYS * DAY ? 'basil' : 'legacy';
    const invoice = stripeId(prng, 'in', 24);
    const f: InvoiceFacts = {
      invoice, customer: customer.id, amount: customer.amount, number: `${numberPrefix}-${String(k + 1).padStart(4, '0')}`, subscription: customer.subscription,
      customerName: customer.name, customerEmail: customer.email, country: 'NL', method: 'card', business: false, created, shape,
      ...(last ? { attempt: 1, nextPaymentAttempt: null, failureCode: 'expired_card' } : {}),
    };
    const event = last ? stripeEvents.paymentFailed(f) : stripeEvents.paid(f);
    event.api_version = shape === 'basil' ? BASIL_VERSION : LEGACY_VERSION;
    event.id = stripeId(prng, 'evt', 24);
    emit({ psp: 'stripe', at: created, type: event.type, key: event.id, invoice, event, ...(last ? { finalFailure: true } : {}) });
  }
}

// ---------------------------------------------------------------------------------------------
// Mollie: recurring payments of a Mollie subscription; each status change is a classic webhook
// carrying only the payment id, and the hub reads the payment (and customer) from the Mollie API.

function mollieHistory(g: Gen, customer: DemoCustomer, emit: (e: EventDraft<MollieDemoEvent>) => void): void {
  const { prng, cycles, latest } = g;
  const story = customer.story;
  const final =
    story === 'final_failure' ? MOLLIE_FINAL_CODES[g.turns.mollie++ % MOLLIE_FINAL_CODES.length]
    : story === 'pays_after_handover' || story === 'retries_recover' ? { code: 'AM04', method: 'sepa_debit' as const }
    : undefined;
  customer.method = final?.method ?? (story === 'disputes' || prng.next() < 0.75 ? 'sepa_debit' : 'card');
  customer.failureCode = final?.code;
  customer.id = stripeId(prng, 'cst', 10);
  customer.subscription = stripeId(prng, 'sub', 10);
  const mandateId = stripeId(prng, 'mdt', 10);
  const iban = ibanFor(prng, customer.country);
  const cardLast4 = digits(prng, 4);
  const mandateSigned = dayOf(g.nowSec - (cycles + 2) * CYCLE_DAYS * DAY);
  const s = schedule(g, story, story === 'retries_recover');
  const locale = customer.country === 'BE' ? 'nl_BE' : 'nl_NL';
  const customerObject = mollieCustomer({ id: customer.id, name: customer.name, email: customer.email, locale, metadata: s.business ? { customerType: 'business' } : null });
  const sepa = customer.method === 'sepa_debit';

  let ended = false;
  for (let k = 0; k < cycles && !ended; k++) {
    const start = s.start(k);
    if (start > latest) break;
    const paymentId = stripeId(prng, 'tr', 10);
    const number = `ACME-${s.numberPrefix.slice(0, 4)}-${String(k + 1).padStart(4, '0')}`;
    const month = new Date(start * 1000).toLocaleString('en', { month: 'long', year: 'numeric', timeZone: 'UTC' });
    /** The payment as GET /v2/payments/:id answers it in `status` since `statusAt`. */
    const payment = (status: 'paid' | 'failed', statusAt: number, code?: string): Json => {
      const common = {
        id: paymentId,
        status,
        value: decimal(customer.amount),
        currency: 'EUR',
        customerId: customer.id,
        description: `Acme subscription ${month}`,
        metadata: { invoiceId: number },
        createdAt: mollieTime(start),
        statusAt: mollieTime(statusAt),
        locale,
      };
      if (sepa) {
        const p = molliePayments.sepaRecurring({ ...common, bankReasonCode: code ?? null, bankReason: code ? MOLLIE_BANK_REASONS[code] : undefined, mandateId, subscriptionId: customer.subscription });
        const tail = paymentId.slice(3);
        p.details = {
          ...p.details,
          transferReference: `SD${digits(prng, 2)}-${digits(prng, 4)}-${digits(prng, 4)}-${digits(prng, 4)}`,
          consumerName: customer.name,
          consumerAccount: iban,
          consumerBic: customer.country === 'NL' ? `${iban.slice(4, 8)}NL2A` : 'GEBABEBB',
          dueDate: dayOf(start + DAY),
          signatureDate: mandateSigned,
          endToEndIdentifier: `E2E-${number}`,
          mandateReference: `ACME-MDT-${customer.id.slice(4, 10).toUpperCase()}`,
          batchReference: `BATCH-${dayOf(start).replace(/-/g, '')}`,
          fileReference: `FILE-${dayOf(start).replace(/-/g, '')}-${tail.slice(0, 4)}`,
        };
        return p;
      }
      const p = molliePayments.card({ ...common, failureReason: code ?? null, failureMessage: code === 'card_expired' ? 'The card has expired.' : undefined, sequenceType: 'recurring' });
      p.mandateId = mandateId;
      p.details = { ...p.details, cardNumber: cardLast4, cardHolder: customer.name };
      return p;
    };
    /**
     * How the customer settles the cycle's invoice after its payment failed. A failed Mollie
     * payment is final — it never turns paid (Mollie's status docs: failed, expired, canceled and
     * paid are definitive) — so the customer pays through a new one-off iDEAL payment (a payment
     * link) that carries the invoice's metadata, which the hub links to the open invoice. Its id
     * comes from a stream of its own (seeded by the first payment's id), so the rest of the data is
     * the same as before re-payments were modelled.
     */
    const repayment = (statusAt: number): Json => {
      const ownPrng = mulberry32(fnv1a(`${paymentId}:repayment`));
      const p = molliePayments.ideal({
        id: stripeId(ownPrng, 'tr', 10),
        status: 'paid',
        value: decimal(customer.amount),
        currency: 'EUR',
        customerId: customer.id,
        description: `Invoice ${number}`,
        metadata: { invoiceId: number },
        createdAt: mollieTime(statusAt - HOUR),
        statusAt: mollieTime(statusAt),
        locale,
      });
      p.details = { consumerName: customer.name, consumerAccount: iban, consumerBic: customer.country === 'NL' ? `${iban.slice(4, 8)}NL2A` : 'GEBABEBB' };
      return p;
    };
    // `invoice` stays the first payment's id: the invoice the hub opened for it, which a re-payment pays.
    const send = (p: Json, at: number, chargebacks: Json[] = []) => {
      const type = chargebacks.length > 0 ? 'payment.chargeback' : `payment.${p.status}`;
      const key = chargebacks.length > 0 ? `${p.id}:chargeback:${chargebacks[chargebacks.length - 1].id}` : `${p.id}:${p.status}`;
      emit({ psp: 'mollie', at, type, key, invoice: paymentId, payment: p, mollieCustomer: customerObject, chargebacks, ...(p.status === 'failed' ? { finalFailure: true } : {}) });
    };
    // A SEPA debit is collected the day after the renewal and returned by the bank a few days later;
    // a card is charged at once.
    const paidAt = sepa ? start + DAY + prng.int(6) * HOUR : start + 60 + prng.int(30);
    const failedAt = sepa ? start + (3 + prng.int(3)) * DAY + prng.int(8) * HOUR : start + 60 + prng.int(30);
    const paid = () => send(payment('paid', paidAt), paidAt);

    switch (story) {
      case 'retries_recover': {
        if (k !== s.troubleCycle) {
          paid();
          break;
        }
        // Failed (Mollie does not retry by itself), then settled by the customer a few days later,
        // inside the hand-over period, through a new payment for the same invoice.
        send(payment('failed', failedAt, 'AM04'), failedAt);
        const settledAt = failedAt + (2 + prng.int(2)) * DAY + prng.int(6) * HOUR;
        send(repayment(settledAt), settledAt);
        break;
      }
      case 'final_failure':
      case 'pays_after_handover': {
        if (k < s.troubleCycle) {
          paid();
          break;
        }
        const code = customer.failureCode!;
        send(payment('failed', failedAt, code), failedAt);
        if (story === 'pays_after_handover') {
          const settledAt = failedAt + (18 + prng.int(6)) * DAY;
          send(repayment(settledAt), settledAt);
        }
        // No mandate or a closed account ends the subscription; a lack of funds may recur.
        if (story === 'pays_after_handover' || code !== 'AM04' || !s.keepsFailing) ended = true;
        break;
      }
      case 'disputes': {
        const p = payment('paid', paidAt);
        send(p, paidAt);
        if (k === s.troubleCycle) {
          const at = paidAt + (10 + prng.int(15)) * DAY + prng.int(12) * HOUR;
          // A SEPA debit refunded at the customer's request (MD06, within eight weeks).
          const cb = mollieChargeback({ paymentId, id: stripeId(prng, 'chb', 10), value: decimal(customer.amount), createdAt: mollieTime(at), reasonCode: 'MD06', reasonDescription: 'Refund request by end customer' });
          send(p, at, [cb]);
        }
        break;
      }
      default:
        paid();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Adyen: recurring (subscription) authorisations; the notification carries every fact.

function adyenHistory(g: Gen, customer: DemoCustomer, emit: (e: EventDraft<AdyenDemoEvent>) => void): void {
  const { prng, cycles, latest } = g;
  const story = customer.story;
  const reason = story === 'final_failure' ? ADYEN_FINAL_REASONS[g.turns.adyen++ % ADYEN_FINAL_REASONS.length] : undefined;
  customer.method = story === 'sepa_return' || (story === 'pays_on_time' && prng.next() < 0.4) ? 'sepa_debit' : 'card';
  customer.failureCode = story === 'sepa_return' ? 'AM04' : reason;
  customer.id = `GLX-C-${digits(prng, 6)}`;
  customer.subscription = `GLX-S-${digits(prng, 6)}`;
  const paymentMethod = customer.method === 'sepa_debit' ? 'sepadirectdebit' : prng.pick(['visa', 'mc']);
  const s = schedule(g, story, story === 'retries_recover');
  const pspRef = () => randomString(prng, 16, UPPER_ALPHABET);

  let ended = false;
  for (let k = 0; k < cycles && !ended; k++) {
    const start = s.start(k);
    if (start > latest) break;
    const merchantReference = `GLX-${s.numberPrefix.slice(0, 6)}-${String(k + 1).padStart(3, '0')}`;
    const facts = (at: number, extra: Partial<AdyenFacts> = {}): AdyenFacts => ({
      merchantReference,
      amount: customer.amount,
      currency: 'EUR',
      pspReference: pspRef(),
      merchantAccount: ADYEN_MERCHANT_ACCOUNT,
      shopperReference: customer.id,
      shopperEmail: customer.email,
      paymentMethod,
      eventDate: adyenDate(new Date(at * 1000)),
      ...extra,
    });
    const send = (item: AdyenItem, at: number, finalFailure = false) =>
      emit({ psp: 'adyen', at, type: `${item.eventCode}:${item.success}`, key: `${item.pspReference}:${item.eventCode}:${item.success}`, invoice: merchantReference, item, ...(finalFailure ? { finalFailure } : {}) });
    const authorised = (at: number): AdyenItem => {
      const item = adyenItems.authorised(facts(at));
      send(item, at);
      return item;
    };
    const chargedAt = start + 60 + prng.int(30);

    switch (story) {
      case 'retries_recover': {
        if (k !== s.troubleCycle) {
          authorised(chargedAt);
          break;
        }
        send(adyenItems.refusedRecurring({ ...facts(chargedAt), reason: 'Not enough balance' }), chargedAt, true);
        // The merchant retries three days later: a new payment (pspReference) for the same invoice.
        authorised(chargedAt + 3 * DAY + prng.int(6) * HOUR);
        break;
      }
      case 'final_failure': {
        if (k < s.troubleCycle) {
          authorised(chargedAt);
          break;
        }
        send(adyenItems.refusedRecurring({ ...facts(chargedAt), reason: reason! }), chargedAt, true);
        if (!ADYEN_SOFT_REASONS.has(reason!) || !s.keepsFailing) ended = true;
        break;
      }
      case 'sepa_return': {
        const auth = authorised(chargedAt);
        if (k !== s.troubleCycle) break;
        // The bank returns the debit a few days later (AM04, insufficient funds); Adyen reports the
        // return as a CHARGEBACK of the authorised payment.
        const returnedAt = chargedAt + (4 + prng.int(3)) * DAY + prng.int(8) * HOUR;
        send(adyenItems.chargeback({ ...facts(returnedAt), originalReference: auth.pspReference, chargebackReasonCode: 'AM04', reason: 'Insufficient funds' }), returnedAt, true);
        ended = true;
        break;
      }
      case 'disputes': {
        const auth = authorised(chargedAt);
        if (k !== s.troubleCycle) break;
        const dispute = ADYEN_DISPUTES[paymentMethod] ?? ADYEN_DISPUTES.visa;
        const disputeRef = pspRef();
        const noticeAt = chargedAt + (10 + prng.int(10)) * DAY + prng.int(12) * HOUR;
        const debitAt = noticeAt + (5 + prng.int(5)) * DAY;
        const f = { originalReference: auth.pspReference, pspReference: disputeRef, chargebackReasonCode: dispute.code, reason: dispute.reason };
        send(adyenItems.notificationOfChargeback({ ...facts(noticeAt), ...f }), noticeAt);
        send(adyenItems.chargeback({ ...facts(debitAt), ...f }), debitAt);
        break;
      }
      default:
        authorised(chargedAt);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GoCardless: SEPA Direct Debit payments of a subscription; events carry only links, and the hub
// fetches the payment, its mandate and the mandate's customer.

function gocardlessHistory(g: Gen, customer: DemoCustomer, cities: string[], emit: (e: EventDraft<GoCardlessDemoEvent>) => void): void {
  const { prng, cycles, latest } = g;
  const story = customer.story;
  const final = story === 'final_failure' ? GOCARDLESS_FINAL_CODES[g.turns.gocardless++ % GOCARDLESS_FINAL_CODES.length] : undefined;
  customer.method = 'sepa_debit';
  customer.failureCode = final?.cause;
  customer.id = gocardlessRef(prng, 'CU');
  customer.subscription = gocardlessRef(prng, 'SB');
  const mandateId = gocardlessRef(prng, 'MD');
  const s = schedule(g, story, false);
  const [givenName, ...family] = customer.name.split(' ');
  const customerResource = gocardlessResources.customer({
    id: customer.id,
    givenName,
    familyName: family.join(' '),
    ...(s.business ? { companyName: `${family.join(' ')} Holding B.V.` } : {}),
    email: customer.email,
    countryCode: customer.country,
    language: 'nl',
    city: prng.pick(cities),
    postalCode: `${1000 + prng.int(8999)} ${randomString(prng, 2, 'ABCDEFGHJKLMNPRSTVWXZ')}`,
  });
  const createdAt = isoAt(s.start(0) - 20 * DAY);
  const mandate = (status: 'active' | 'cancelled'): Json => ({
    ...gocardlessResources.mandate({ id: mandateId, customer: customer.id, status, reference: `ACME-${mandateId.slice(2, 8)}` }),
    created_at: createdAt,
  });
  const customerJson = { ...customerResource, created_at: createdAt };

  let ended = false;
  for (let k = 0; k < cycles && !ended; k++) {
    const start = s.start(k);
    if (start > latest) break;
    const paymentId = gocardlessRef(prng, 'PM');
    const number = `ACME-GC-${s.numberPrefix.slice(0, 4)}-${String(k + 1).padStart(4, '0')}`;
    /** GET /payments/:id in `status`. */
    const payment = (status: string): Json =>
      gocardlessResources.payment({
        id: paymentId,
        mandate: mandateId,
        amount: customer.amount,
        currency: 'EUR',
        chargeDate: dayOf(start),
        description: 'Acme subscription',
        status,
        metadata: { invoice_number: number },
        subscription: customer.subscription,
        reference: number,
        createdAt: isoAt(start - 4 * DAY),
      });
    const send = (events: Json[], status: string, at: number, finalFailure = false) =>
      emit({
        psp: 'gocardless',
        at,
        type: events.map((e) => `${e.resource_type}.${e.action}`).join(' + '),
        key: events.map((e) => e.id).join(','),
        invoice: paymentId,
        events,
        webhookId: gocardlessRef(prng, 'WB'),
        resources: { payment: payment(status), mandate: mandate('active'), customer: customerJson },
        ...(finalFailure ? { finalFailure } : {}),
      });
    const ev = { id: () => gocardlessRef(prng, 'EV'), at: (sec: number) => isoAt(sec) };
    const paidOut = (at: number) => send([gocardlessEvents.paymentPaidOut({ id: ev.id(), payment: paymentId, payout: gocardlessRef(prng, 'PO'), createdAt: ev.at(at) })], 'paid_out', at);
    /** payments.failed as the bank reported it; final unless GoCardless says it will retry. */
    const failed = (at: number, f: { cause: string; reasonCode: string; description?: string }, willRetry: boolean) =>
      send(
        [gocardlessEvents.paymentFailed({ id: ev.id(), payment: paymentId, createdAt: ev.at(at), cause: f.cause, reasonCode: f.reasonCode, description: f.description, willAttemptRetry: willRetry })],
        'failed',
        at,
        !willRetry,
      );
    // Collected on the charge date; paid out to the merchant a few days later; a return arrives
    // two to four days after the charge date.
    const paidOutAt = start + (3 + prng.int(2)) * DAY + prng.int(8) * HOUR;
    const returnedAt = start + (2 + prng.int(3)) * DAY + prng.int(8) * HOUR;
    /** GoCardless's intelligent retry: collected again about a week after the failure. */
    const retriedPaidOutAt = returnedAt + (8 + prng.int(3)) * DAY;

    switch (story) {
      case 'retries_recover': {
        if (k !== s.troubleCycle && k !== s.secondTrouble) {
          paidOut(paidOutAt);
          break;
        }
        failed(returnedAt, { cause: 'insufficient_funds', reasonCode: 'AM04' }, true);
        paidOut(retriedPaidOutAt);
        break;
      }
      case 'final_failure': {
        if (k < s.troubleCycle) {
          paidOut(paidOutAt);
          break;
        }
        const f = final!;
        if (f.cause === 'insufficient_funds') {
          // Retried once by GoCardless, then failed for good.
          failed(returnedAt, f, true);
          failed(retriedPaidOutAt - 2 * DAY, f, false);
        } else {
          failed(returnedAt, f, false);
        }
        if (f.cause !== 'insufficient_funds' || !s.keepsFailing) ended = true;
        break;
      }
      case 'disputes': {
        paidOut(paidOutAt);
        if (k === s.troubleCycle) {
          const at = paidOutAt + (10 + prng.int(15)) * DAY + prng.int(12) * HOUR;
          send([gocardlessEvents.paymentChargedBack({ id: ev.id(), payment: paymentId, createdAt: ev.at(at) })], 'charged_back', at);
        }
        break;
      }
      case 'mandate_cancelled': {
        if (k < s.troubleCycle) {
          paidOut(paidOutAt);
          break;
        }
        // The bank cancels the mandate (account closed) before the next collection; GoCardless
        // cancels the subscription with it, in the same delivery.
        const at = start - 2 * DAY + prng.int(12) * HOUR;
        const events = [
          gocardlessEvents.mandateCancelled({ id: ev.id(), mandate: mandateId, createdAt: ev.at(at) }),
          gocardlessEvents.other('subscriptions', 'cancelled', { subscription: customer.subscription, mandate: mandateId }, {
            id: ev.id(),
            createdAt: ev.at(at + 1),
            origin: 'gocardless',
            cause: 'mandate_cancelled',
            description: 'The subscription was cancelled because its mandate was cancelled.',
          }),
        ];
        emit({
          psp: 'gocardless',
          at,
          type: events.map((e) => `${e.resource_type}.${e.action}`).join(' + '),
          key: events.map((e) => e.id).join(','),
          invoice: '',
          events,
          webhookId: gocardlessRef(prng, 'WB'),
          resources: { mandate: mandate('cancelled'), customer: customerJson },
        });
        ended = true;
        break;
      }
      default:
        paidOut(paidOutAt);
    }
  }
}

// ---------------------------------------------------------------------------------------------

export interface DemoPspSummary {
  merchants: DemoMerchant[];
  customers: Partial<Record<DemoMerchant, number>>;
  /** Deliveries sent (duplicates included). */
  webhooks: number;
  invoices: number;
  byType: Record<string, number>;
}

export interface DemoDataSummary {
  events: number;
  duplicates: number;
  customers: Record<DemoMerchant, number>;
  invoices: number;
  byType: Record<string, number>;
  byStory: Record<CustomerStory, number>;
  byPsp: Record<DemoPsp, DemoPspSummary>;
}

export function summarizeDemoEvents(events: DemoEvent[]): DemoDataSummary {
  const customers: Record<DemoMerchant, Set<string>> = { acme: new Set(), globex: new Set() };
  const invoices = new Set<string>();
  const byType: Record<string, number> = {};
  const storyOf = new Map<string, CustomerStory>();
  const byPsp = Object.fromEntries(DEMO_PSPS.map((p) => [p, { merchants: [], customers: {}, webhooks: 0, invoices: 0, byType: {} }])) as unknown as Record<DemoPsp, DemoPspSummary>;
  const pspCustomers = new Map<string, Set<string>>();
  const pspInvoices = new Map<DemoPsp, Set<string>>();
  for (const e of events) {
    const who = `${e.psp}/${e.customer}`;
    customers[e.merchant].add(who);
    if (e.invoice) {
      invoices.add(`${e.merchant}/${e.psp}/${e.invoice}`);
      if (!pspInvoices.has(e.psp)) pspInvoices.set(e.psp, new Set());
      pspInvoices.get(e.psp)!.add(`${e.merchant}/${e.invoice}`);
    }
    storyOf.set(`${e.merchant}/${who}`, e.story);
    const p = byPsp[e.psp];
    p.webhooks++;
    if (!p.merchants.includes(e.merchant)) p.merchants.push(e.merchant);
    const key = `${e.psp}/${e.merchant}`;
    if (!pspCustomers.has(key)) pspCustomers.set(key, new Set());
    pspCustomers.get(key)!.add(e.customer);
    if (!e.duplicate) {
      byType[e.type] = (byType[e.type] ?? 0) + 1;
      p.byType[e.type] = (p.byType[e.type] ?? 0) + 1;
    }
  }
  for (const [key, set] of pspCustomers) {
    const [psp, merchant] = key.split('/') as [DemoPsp, DemoMerchant];
    byPsp[psp].customers[merchant] = set.size;
  }
  for (const [psp, set] of pspInvoices) byPsp[psp].invoices = set.size;
  const byStory = Object.fromEntries(CUSTOMER_STORIES.map((s) => [s, 0])) as Record<CustomerStory, number>;
  for (const s of storyOf.values()) byStory[s]++;
  return {
    events: events.length,
    duplicates: events.filter((e) => e.duplicate).length,
    customers: { acme: customers.acme.size, globex: customers.globex.size },
    invoices: invoices.size,
    byType,
    byStory,
    byPsp,
  };
}

export interface DemoExample {
  merchant: DemoMerchant;
  psp: DemoPsp;
  customer: string;
  invoice: string;
  name: string;
  story: CustomerStory;
}

/**
 * A customer of `merchant` at `psp` whose story ends at the agency, and its first finally-failed
 * invoice: the examples the demo points at. For Adyen the SEPA return is preferred.
 */
export function exampleCustomer(events: DemoEvent[], merchant: DemoMerchant, psp: DemoPsp = 'stripe'): DemoExample | null {
  const candidates = events.filter((e) => e.merchant === merchant && e.psp === psp && e.finalFailure && !e.duplicate && (e.story === 'final_failure' || e.story === 'sepa_return'));
  const pick = candidates.find((e) => e.story === 'sepa_return') ?? candidates[0];
  if (!pick) return null;
  return { merchant, psp, customer: pick.customer, invoice: pick.invoice, name: pick.customerName, story: pick.story };
}

/** The merchant whose customers at `psp` the demo's examples are taken from (the first that has any). */
export function merchantOf(events: DemoEvent[], psp: DemoPsp): DemoMerchant | null {
  return events.find((e) => e.psp === psp)?.merchant ?? null;
}
