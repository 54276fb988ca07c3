/**
 * The `partners[]` block for `connector: reference` (contract §7), validated at start-up:
 * defaults filled in, and a bad block stopped with the field named.
 */
import crypto from 'node:crypto';
import { referenceAgencyConnector } from '../../../connectors/agency/reference';
import { describeIssues } from '../../../connectors/agency/reference/schema';
import { createHubSigner } from '../../../src/auth/hub-signer';
import { IN_SECRET, OUT_SECRET, mapping } from './helpers';

const schema = referenceAgencyConnector.configSchema;
const rsaPublicPem = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
const ecPublicPem = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString();

const contractExample = {
  id: 'refagency',
  connector: 'reference',
  baseUrl: 'http://localhost:4010',
  auth: {
    outbound: { alg: 'HS256', secret: OUT_SECRET },
    inbound: { alg: 'HS256', secret: IN_SECRET },
  },
  pull: { everySeconds: 60 },
};

function problem(block: unknown): string {
  const result = schema.safeParse(block);
  if (result.success) throw new Error('expected the block to be refused');
  return describeIssues(result.error);
}

describe('reference partner config', () => {
  it('accepts the contract §7 example and fills in defaults', () => {
    expect(schema.parse(contractExample)).toEqual({ ...contractExample, timeoutMs: 10_000, pull: { everySeconds: 60, limit: 100 } });
  });

  it('leaves pull out when absent (push-only partner)', () => {
    const { pull: _pull, ...noPull } = contractExample;
    expect(schema.parse(noPull).pull).toBeUndefined();
  });

  it('accepts RS256/ES256 outbound with the hub key, and RS256/ES256 inbound with the agency public key', () => {
    const rs = schema.parse({ ...contractExample, auth: { outbound: { alg: 'RS256' }, inbound: { alg: 'RS256', publicKey: rsaPublicPem } } });
    expect(rs.auth.inbound).toEqual({ alg: 'RS256', publicKey: rsaPublicPem });
    const es = schema.parse({ ...contractExample, auth: { outbound: { alg: 'ES256' }, inbound: { alg: 'ES256', publicKey: ecPublicPem } } });
    expect(es.auth.outbound).toEqual({ alg: 'ES256' });
  });

  it.each([
    [{ baseUrl: 'not a url' }, /^baseUrl: /],
    [{ baseUrl: 'ftp://agency.example' }, /^baseUrl: /],
    [{ connector: 'other' }, /^connector: /],
    [{ id: 'ref agency/1' }, /^id: /],
    [{ timeoutMs: -1 }, /^timeoutMs: /],
    [{ auth: { outbound: { alg: 'HS256' }, inbound: contractExample.auth.inbound } }, /^auth\.outbound\.secret: /],
    [{ auth: { outbound: { alg: 'HS256', secret: 'short' }, inbound: contractExample.auth.inbound } }, /^auth\.outbound\.secret: .*32 characters/],
    [{ auth: { outbound: { alg: 'none' }, inbound: contractExample.auth.inbound } }, /^auth\.outbound\.alg: /],
    [{ auth: { outbound: contractExample.auth.outbound, inbound: { alg: 'RS256' } } }, /^auth\.inbound\.publicKey: /],
    [{ auth: { outbound: contractExample.auth.outbound, inbound: { alg: 'RS256', publicKey: 'not a pem' } } }, /^auth\.inbound\.publicKey: not a readable public key/],
    [{ auth: { outbound: contractExample.auth.outbound, inbound: { alg: 'ES256', publicKey: rsaPublicPem } } }, /^auth\.inbound\.publicKey: .*EC P-256/],
    [{ auth: { outbound: contractExample.auth.outbound, inbound: { alg: 'HS256', secret: IN_SECRET, scret: 'typo' } } }, /^auth\.inbound: .*scret/],
    [{ pull: { everySecond: 10 } }, /^pull: .*everySecond/],
    [{ debtorFields: ['email', 'iban'] }, /^debtorFields\[1\]: /],
  ])('refuses %j naming the field', (override, expected) => {
    expect(problem({ ...contractExample, ...override })).toMatch(expected);
  });
});

describe('referenceAgencyConnector', () => {
  it('is registered as connector "reference"', () => {
    expect(referenceAgencyConnector.id).toBe('reference');
  });

  it('refuses a mapping written for another connector', () => {
    expect(() =>
      referenceAgencyConnector.create({
        partnerId: 'refagency',
        hubId: 'hub',
        config: schema.parse(contractExample),
        mapping: { ...mapping, partnerConnector: 'other' },
        signer: createHubSigner({ hubId: 'hub' }),
      }),
    ).toThrow(/mapping is for connector other/);
  });

  it('creates a client exposing every AgencyClient method', () => {
    const client = referenceAgencyConnector.create({
      partnerId: 'refagency',
      hubId: 'hub',
      config: schema.parse(contractExample),
      mapping,
      signer: createHubSigner({ hubId: 'hub' }),
    });
    for (const method of ['submitCase', 'addClaim', 'reportPayment', 'withdraw', 'getCase', 'pullUpdates', 'verifyPush'] as const) {
      expect(typeof client[method]).toBe('function');
    }
  });
});
