/**
 * Shared fixtures for the reference connector tests: a partner config as the hub would load it,
 * a client wired to a real signer and the real mapping file, sample payloads.
 */
import type { KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createHubSigner, type HubKey } from '../../../src/auth/hub-signer';
import { loadAgencyMapping } from '../../../src/mappings/load';
import type { AgencyClient, CaseSubmission, ExchangeRecord } from '../../../connectors/agency/types';
import { referenceAgencyConnector } from '../../../connectors/agency/reference';
import { referencePartnerConfigSchema, type ReferencePartnerConfig, type ReferenceUpdate } from '../../../connectors/agency/reference/schema';

export const HUB_ID = 'collection-hub';
export const PARTNER_ID = 'refagency';
export const BASE_URL = 'http://agency.test';
export const OUT_SECRET = 'outbound-secret-0123456789abcdef-0123';
export const IN_SECRET = 'inbound-secret-0123456789abcdef-01234';

export const mapping = loadAgencyMapping('reference');

/** A partner block as written in hub.yaml, parsed the way start-up parses it. */
export function partnerConfig(overrides: Record<string, unknown> = {}): ReferencePartnerConfig {
  return referencePartnerConfigSchema.parse({
    id: PARTNER_ID,
    connector: 'reference',
    baseUrl: BASE_URL,
    auth: {
      outbound: { alg: 'HS256', secret: OUT_SECRET },
      inbound: { alg: 'HS256', secret: IN_SECRET },
    },
    ...overrides,
  });
}

export function makeClient(opts: { config?: Record<string, unknown>; hubKey?: HubKey } = {}): AgencyClient {
  return referenceAgencyConnector.create({
    partnerId: PARTNER_ID,
    hubId: HUB_ID,
    config: partnerConfig(opts.config),
    mapping,
    signer: createHubSigner({ hubId: HUB_ID, key: opts.hubKey }),
  });
}

export const submission: CaseSubmission = {
  reference: 'case_01H',
  creditor: { id: 'acme', name: 'Acme Subscriptions BV' },
  debtor: {
    reference: 'cus_123',
    type: 'consumer',
    name: 'Jan de Vries',
    email: 'jan@example.nl',
    phone: '+31612345678',
    address: { line1: 'Dorpsstraat 1', postalCode: '1234 AB', city: 'Utrecht', country: 'NL' },
    country: 'NL',
    locale: 'nl-NL',
  },
  claims: [
    {
      reference: 'inv_1',
      number: 'INV-0001',
      principal: { value: 4999, currency: 'EUR' },
      dueAt: '2024-03-01T00:00:00.000Z',
      failure: { provider: 'stripe', code: 'insufficient_funds', reason: 'insufficient_funds' },
    },
  ],
};

/** An update as the agency writes it (contract §5). */
export function rawUpdate(overrides: Partial<ReferenceUpdate> = {}): ReferenceUpdate {
  return {
    id: 'upd_1',
    seq: 1,
    caseId: 'agc_42',
    caseReference: 'case_01H',
    claimReference: 'inv_1',
    status: 'in_collection',
    occurredAt: '2024-03-10T12:00:00.000Z',
    ...overrides,
  };
}

/** The bearer token the agency received, verified as the agency would. */
export function verifiedBearer(headers: Record<string, string>, key: string | KeyObject, alg: jwt.Algorithm): jwt.JwtPayload {
  const match = /^Bearer (.+)$/.exec(String(headers.authorization));
  if (!match) throw new Error(`no bearer token in ${String(headers.authorization)}`);
  return jwt.verify(match[1], key, { algorithms: [alg], issuer: HUB_ID, audience: PARTNER_ID }) as jwt.JwtPayload;
}

export function bearerOf(headers: Record<string, string>): string {
  return String(headers.authorization).replace(/^Bearer /, '');
}

export function exchanges(): { log: ExchangeRecord[]; onExchange: (x: ExchangeRecord) => void } {
  const log: ExchangeRecord[] = [];
  return { log, onExchange: (x) => log.push(x) };
}
