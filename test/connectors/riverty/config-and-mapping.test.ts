/**
 * The Riverty partner block (strict, with defaults) as start-up reads it, its registration, and
 * mappings/agency/riverty.yaml: every documented closing type mapped, endings that must say why
 * do, and every outcome the simulator words in Riverty's vocabulary maps back to itself.
 */
import { parseConfig } from '../../../src/config/load';
import { agencyConnectors } from '../../../connectors/registry';
import { CLOSING_TYPES, rivertyAgencyConnector } from '../../../connectors/agency/riverty';
import { normalizeTransaction } from '../../../connectors/agency/riverty/normalize';
import { createHubSigner } from '../../../src/auth/hub-signer';
import { loadAgencyMapping } from '../../../src/mappings/load';
import { rivertyWords, toTransaction } from '../../../sim/agency-sim/riverty-vocabulary';
import type { AgencyStatus, AgencyUpdate, ResolutionReason } from '../../../src/domain/types';
import { CLIENT_SECRET, mapping, partnerConfig } from './helpers';
import { testSecret } from '../../support/secrets';

describe('riverty partner config', () => {
  it('fills the defaults: token URL under baseUrl, form-body credentials, pull every minute', () => {
    expect(partnerConfig()).toEqual({
      id: 'riverty',
      connector: 'riverty',
      baseUrl: 'http://riverty.test',
      clientId: 'hub-client',
      clientSecret: CLIENT_SECRET,
      tokenAuth: 'client_secret_post',
      timeoutMs: 10_000,
      pull: { everySeconds: 60, limit: 100, gapGraceSeconds: 120 },
    });
  });

  it.each([
    [{ clientSecert: 'x' }, /clientSecert/],
    [{ pull: { everySeconds: 5, limt: 10 } }, /limt/],
    [{ clientId: '' }, /clientId|too small|>=1/i],
    [{ baseUrl: 'ftp://riverty.test' }, /http\(s\) URL/],
    [{ tokenAuth: 'private_key_jwt' }, /tokenAuth|client_secret_post/],
    [{ debtorFields: ['iban'] }, /debtorFields/],
  ])('refuses %p', (overrides, message) => {
    expect(() => partnerConfig(overrides)).toThrow(message);
  });

  it('refuses a block without its client credentials', () => {
    expect(() => partnerConfig({ clientSecret: undefined })).toThrow(/clientSecret/);
  });

  it('is registered, and start-up reads a riverty partner from hub.yaml', () => {
    expect(agencyConnectors.get('riverty')).toBe(rivertyAgencyConnector);
    const config = parseConfig(
      `
hub: { id: collection-hub, identifierHashSecret: \${HUB_IDENTIFIER_HASH_SECRET} }
auth: { merchantTokenSecret: \${HUB_MERCHANT_TOKEN_SECRET} }
merchants:
  - id: acme
    name: Acme
    country: NL
    providers: { stripe: { webhookSecret: \${ACME_STRIPE_WHSEC} } }
    partner: riverty
    policy: { handoverAfterDays: 0, minAmount: { value: 0, currency: EUR }, stackWindowDays: 45 }
partners:
  - id: riverty
    connector: riverty
    baseUrl: https://collection.example
    tokenUrl: https://identity.example/oauth/token
    clientId: \${RIVERTY_CLIENT_ID}
    clientSecret: \${RIVERTY_CLIENT_SECRET}
    audience: https://api.example
    pull: { everySeconds: 30 }
`,
      { RIVERTY_CLIENT_ID: 'acme-hub', RIVERTY_CLIENT_SECRET: CLIENT_SECRET, HUB_MERCHANT_TOKEN_SECRET: testSecret('merchantToken'), HUB_IDENTIFIER_HASH_SECRET: testSecret('identifierHash'), ACME_STRIPE_WHSEC: testSecret('stripeWebhook') },
    );
    expect(config.partners[0]).toMatchObject({
      id: 'riverty',
      connector: 'riverty',
      config: { clientId: 'acme-hub', clientSecret: CLIENT_SECRET, pull: { everySeconds: 30, limit: 100 } },
    });
  });

  it('refuses a mapping written for another connector, and a block whose id is not the partner', () => {
    const deps = { partnerId: 'riverty', hubId: 'collection-hub', config: partnerConfig(), signer: createHubSigner({ hubId: 'collection-hub' }) };
    expect(() => rivertyAgencyConnector.create({ ...deps, mapping: loadAgencyMapping('reference') })).toThrow(/expected riverty/);
    expect(() => rivertyAgencyConnector.create({ ...deps, partnerId: 'other', mapping })).toThrow(/config block has id riverty/);
  });
});

describe('mappings/agency/riverty.yaml', () => {
  it('maps every closing type Riverty documents', () => {
    const missing = CLOSING_TYPES.filter((t) => !Object.hasOwn(mapping.statuses, t));
    expect(missing).toEqual([]);
  });

  it('gives a reason to every closing type that ends paid, withdrawn or uncollectible', () => {
    const withoutReason = CLOSING_TYPES.filter((t) => ['paid', 'withdrawn', 'uncollectible'].includes(mapping.statuses[t]) && !Object.hasOwn(mapping.reasons, t));
    expect(withoutReason).toEqual([]);
  });

  it('maps only closing types in reasons (a status word has no reason)', () => {
    expect(Object.keys(mapping.reasons).filter((k) => !(CLOSING_TYPES as readonly string[]).includes(k))).toEqual([]);
  });

  it('does not let an agency report the hub-only pending_handover', () => {
    expect(Object.values(mapping.statuses)).not.toContain('pending_handover');
  });

  // Every outcome the simulator's case book produces, worded by the riverty personality, must
  // come back through the connector as the same canonical status and reason.
  const outcomes: [AgencyStatus, ResolutionReason | null][] = [
    ['submitted', null], ['in_collection', null], ['arrangement', null], ['partially_paid', null], ['disputed', null], ['on_hold', null], ['paid', null], ['closed', null],
    ['paid', 'paid_in_full'], ['paid', 'paid_via_arrangement'], ['paid', 'paid_to_merchant'],
    ['uncollectible', 'debtor_insolvent'], ['uncollectible', 'debtor_deceased'], ['uncollectible', 'debtor_untraceable'],
    ['uncollectible', 'time_barred'], ['uncollectible', 'written_off'],
    ['withdrawn', 'withdrawn_by_merchant'], ['closed', 'disputed_upheld'], ['closed', 'credit_note'], ['closed', 'written_off'],
  ];
  it.each(outcomes)('round-trips %s %s through the simulator’s words and the connector’s mapping', (status, reason) => {
    const u: AgencyUpdate = { id: 'upd_1', seq: 1, caseId: 'case_000007', caseReference: 'cse_1', claimReference: 'clm_1', status, occurredAt: '2024-03-10T12:00:00.000Z', ...(reason ? { reason } : {}) };
    const words = rivertyWords(status, reason ?? undefined);
    const back = normalizeTransaction(toTransaction(u, { id: 'case_000007', reference: 'cse_1' }, 0) as never, mapping);
    expect({ status: back.status, reason: back.reason ?? null }).toEqual({ status, reason });
    expect(words.closingType ?? words.status).toMatch(/^[A-Z_]+$/);
  });
});
