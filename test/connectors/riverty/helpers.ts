/**
 * Shared fixtures for the Riverty connector tests: a partner block parsed the way start-up parses
 * it, a client wired to the real mapping file and a clock the test moves, a token endpoint on nock,
 * sample submissions and transactions.
 */
import { createHubSigner } from '../../../src/auth/hub-signer';
import { loadAgencyMapping } from '../../../src/mappings/load';
import type { CaseSubmission, ExchangeRecord } from '../../../connectors/agency/types';
import { createRivertyClient, type RivertyClient } from '../../../connectors/agency/riverty/client';
import { rivertyPartnerConfigSchema, type RivertyPartnerConfig, type RivertyTransaction } from '../../../connectors/agency/riverty/schema';
import type { Received } from '../reference/use-nock';

export const HUB_ID = 'collection-hub';
export const PARTNER_ID = 'riverty';
export const BASE_URL = 'http://riverty.test';
export const CLIENT_ID = 'hub-client';
export const CLIENT_SECRET = 'riverty-client-secret-0123456789';
export const REQUEST_ID = '8ec4f2b1-1111-4222-8333-444455556666';
export const CLAIM_NUMBER = '700000042';

export const mapping = loadAgencyMapping('riverty');

export function partnerConfig(overrides: Record<string, unknown> = {}): RivertyPartnerConfig {
  return rivertyPartnerConfigSchema.parse({
    id: PARTNER_ID,
    connector: 'riverty',
    baseUrl: BASE_URL,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...overrides,
  });
}

/** A clock the test moves by hand (ms). */
export function fakeClock(start = Date.parse('2024-03-10T12:00:00Z')) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

export function makeClient(opts: { config?: Record<string, unknown>; now?: () => number } = {}): RivertyClient {
  return createRivertyClient(
    { partnerId: PARTNER_ID, hubId: HUB_ID, config: partnerConfig(opts.config), mapping, signer: createHubSigner({ hubId: HUB_ID }) },
    { now: opts.now },
  );
}

let tokenCounter = 0;
/** A fresh opaque token value, different every time. */
export const newToken = (): string => `at-${++tokenCounter}-${Math.random().toString(36).slice(2)}`;

type ReplyResult = [number, string | Record<string, unknown>, Record<string, string>];

/**
 * Like use-nock's recordingReply, for a form-encoded request: the body is kept as the raw text
 * (recordingReply would JSON-parse it). nock 15 passes the Fetch Request, nock 14 (path, body).
 */
export function recordingFormReply(into: Received[], status: number, body: Record<string, unknown>) {
  return async function (this: { req?: { method?: string; headers: Record<string, string> } }, first: unknown, ...rest: unknown[]): Promise<ReplyResult> {
    if (typeof first === 'string') {
      const req = this.req!;
      into.push({ method: req.method ?? '', path: first, headers: { ...req.headers }, body: rest[0] });
    } else {
      const req = first as Request;
      const url = new URL(req.url);
      into.push({ method: req.method, path: `${url.pathname}${url.search}`, headers: Object.fromEntries(req.headers.entries()), body: await req.text() });
    }
    return [status, body, {}];
  };
}

/** The token endpoint answering one token (`expiresIn` null: no expires_in); what it received goes into `seen`. */
export function tokenReply(seen: Received[], token = newToken(), expiresIn: number | null = 3600) {
  return recordingFormReply(seen, 200, { access_token: token, token_type: 'Bearer', ...(expiresIn !== null ? { expires_in: expiresIn } : {}) });
}

/** The form body the token endpoint received, as a plain object. */
export function formOf(r: Received): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(String(r.body)).entries());
}

export function bearerOf(r: Received): string {
  return String(r.headers.authorization).replace(/^Bearer /, '');
}

export const submission: CaseSubmission = {
  reference: 'cse_01H',
  creditor: { id: 'acme', name: 'Acme Subscriptions BV' },
  debtor: {
    reference: 'cust_123',
    type: 'consumer',
    name: 'Jan de Vries',
    email: 'jan@example.nl',
    phone: '+31612345678',
    address: { line1: 'Dorpsstraat 12a', postalCode: '1234 AB', city: 'Utrecht', country: 'NL' },
    country: 'NL',
    locale: 'nl-NL',
  },
  claims: [
    {
      reference: 'clm_1',
      number: 'INV-0001',
      principal: { value: 4999, currency: 'EUR' },
      issuedAt: '2024-02-01T10:00:00.000Z',
      dueAt: '2024-03-01T00:00:00.000Z',
      failure: { provider: 'stripe', code: 'insufficient_funds', reason: 'insufficient_funds' },
    },
    {
      reference: 'clm_2',
      principal: { value: 100, currency: 'EUR' },
      failure: { provider: 'stripe', code: 'expired_card', reason: 'card_expired' },
    },
  ],
  collectionCosts: { value: 4000, currency: 'EUR', basis: 'WIK minimum (NL)' },
};

/** A transaction as the agency lists it. */
export function tx(overrides: Partial<RivertyTransaction> = {}): RivertyTransaction {
  return {
    transactionId: `trx_${overrides.sortNumber ?? 0}`,
    sortNumber: 0,
    type: 'STATUS',
    createdAt: '2024-03-10T12:00:00.000Z',
    requestId: REQUEST_ID,
    claimNumber: CLAIM_NUMBER,
    contractNumber: 'cse_01H',
    invoiceNumber: 'clm_1',
    status: 'IN_PROGRESS',
    ...overrides,
  };
}

export function exchanges(): { log: ExchangeRecord[]; onExchange: (x: ExchangeRecord) => void } {
  const log: ExchangeRecord[] = [];
  return { log, onExchange: (x) => log.push(x) };
}
