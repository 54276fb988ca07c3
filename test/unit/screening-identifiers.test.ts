/**
 * Screening's identifiers (issue 17, requirement 3; src/screening/identifiers.ts): normalisation
 * (e-mail trimmed and lower-cased, IBAN without spaces and upper-cased and checked), the salted
 * hash (same input → same hash; another merchant, kind or secret → another hash), what a PSP
 * event teaches, the masks the sync log keeps, and the request's validation (400 messages).
 * Also the first-start secrets file gaining the new secret without losing the old ones.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import {
  createIdentifierHasher,
  identifierProblem,
  identifiersOf,
  maskIdentifier,
  normaliseIban,
  normaliseIdentifier,
  type Identifier,
} from '../../src/screening/identifiers';
import { parseScreeningRequest } from '../../src/http/screening-api';
import { HttpError } from '../../src/http/errors';
import { EXAMPLE_SECRETS, firstStartSecrets, FIRST_START_SECRETS_FILE, parseConfig } from '../../src/config/load';
import { secretProblem } from '../../src/config/secrets';
import { testSecret } from '../support/secrets';
import { testConfigYaml } from '../support/stack';

const IBAN = 'NL91ABNA0417164300';

describe('normalisation', () => {
  it('an e-mail is trimmed and lower-cased, nothing more (+tags and dots are kept)', () => {
    expect(normaliseIdentifier('email', '  Jan.Jansen+News@Example.NL \n')).toBe('jan.jansen+news@example.nl');
    expect(normaliseIdentifier('email', 'not an address')).toBeNull();
    expect(normaliseIdentifier('email', 'a@b@c')).toBeNull();
  });

  it('an IBAN loses its spaces and is upper-cased, and must pass the mod-97 check', () => {
    expect(normaliseIban('nl91 abna 0417 1643 00')).toBe(IBAN);
    expect(normaliseIdentifier('iban', ' NL91ABNA0417164300 ')).toBe(IBAN);
    expect(normaliseIban('NL92ABNA0417164300')).toBeNull(); // a check digit off
    expect(normaliseIban('jan@example.nl')).toBeNull(); // PayPal's consumerAccount is an e-mail
    expect(normaliseIban('')).toBeNull();
  });

  it("the merchant's customer id and a card fingerprint are trimmed, their case kept", () => {
    expect(normaliseIdentifier('merchant_ref', '  CRM-42 ')).toBe('CRM-42');
    expect(normaliseIdentifier('card_fingerprint', 'Xt5EWLLDS7FJjR1c')).toBe('Xt5EWLLDS7FJjR1c');
    expect(normaliseIdentifier('merchant_ref', '   ')).toBeNull();
  });

  it('refuses control characters and overlong values, saying why without repeating the value', () => {
    expect(normaliseIdentifier('merchant_ref', 'a\u0000b')).toBeNull();
    expect(identifierProblem('merchant_ref', 'a\u0000b')).toBe('contains control characters');
    expect(identifierProblem('email', `${'a'.repeat(250)}@example.nl`)).toMatch(/longer than 256/);
    expect(identifierProblem('iban', 'NL92ABNA0417164300')).toMatch(/not a valid IBAN/);
    expect(identifierProblem('iban', 'NL92ABNA0417164300')).not.toContain('NL92');
    expect(identifierProblem('email', 'Jan@Example.nl')).toBeUndefined();
  });
});

describe('the salted hash', () => {
  const secret = testSecret('identifierHash');
  const hasher = createIdentifierHasher(secret);
  const email: Identifier = { kind: 'email', value: 'jan@example.nl' };

  it('the same merchant, kind and value give the same hash, also from another hasher with the same secret', () => {
    const h = hasher.hash('acme', email);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(hasher.hash('acme', email)).toBe(h);
    expect(createIdentifierHasher(secret).hash('acme', email)).toBe(h);
    // Normalised first: the e-mail as typed at sign-up hashes like the one the PSP sent.
    expect(hasher.hash('acme', { kind: 'email', value: normaliseIdentifier('email', ' JAN@example.NL')! })).toBe(h);
  });

  it("another merchant's hash of the same e-mail differs: hashes are never comparable across merchants", () => {
    expect(hasher.hash('globex', email)).not.toBe(hasher.hash('acme', email));
  });

  it('another kind, another secret, or parts that would run together give another hash', () => {
    expect(hasher.hash('acme', { kind: 'merchant_ref', value: 'jan@example.nl' })).not.toBe(hasher.hash('acme', email));
    expect(createIdentifierHasher(testSecret('identifierHash')).hash('acme', email)).not.toBe(hasher.hash('acme', email));
    // Length-prefixed parts: merchant "ac" + ref "meX" is not merchant "acme" + ref "X".
    expect(hasher.hash('ac', { kind: 'merchant_ref', value: 'meX' })).not.toBe(hasher.hash('acme', { kind: 'merchant_ref', value: 'X' }));
  });

  it('is not a plain SHA-256 of the identifier, and refuses a short secret', () => {
    const plain = require('node:crypto').createHash('sha256').update('jan@example.nl').digest('hex');
    expect(hasher.hash('acme', email)).not.toBe(plain);
    expect(() => createIdentifierHasher('too-short')).toThrow(/at least 32 bytes/);
  });
});

describe('what a PSP event teaches', () => {
  it('the e-mail, merchant id, IBAN and card fingerprint of the customer, normalised, each once', () => {
    const ids = identifiersOf({
      customer: { ref: 'cus_1', email: ' Jan@Example.nl', merchantRef: 'CRM-42' },
      payment: { ref: 'tr_1', method: 'sepa_debit', iban: 'NL91 ABNA 0417 1643 00', cardFingerprint: 'Xt5EWLLDS7FJjR1c' },
    });
    expect(ids).toEqual([
      { kind: 'email', value: 'jan@example.nl' },
      { kind: 'merchant_ref', value: 'CRM-42' },
      { kind: 'iban', value: IBAN },
      { kind: 'card_fingerprint', value: 'Xt5EWLLDS7FJjR1c' },
    ]);
  });

  it('nothing without a customer, and nothing that is not an identifier', () => {
    expect(identifiersOf({ payment: { ref: 'tr_1', method: 'card', cardFingerprint: 'abc' } })).toEqual([]);
    expect(identifiersOf({ customer: { ref: 'cus_1', email: 'nobody' }, payment: { ref: 'tr_1', method: 'paypal', iban: 'jan@example.nl' } })).toEqual([]);
  });
});

describe('the masks', () => {
  it('show enough to tell screenings apart, never the identifier', () => {
    expect(maskIdentifier({ kind: 'email', value: 'jan.jansen@example.nl' })).toBe('j•••@e•••.nl');
    expect(maskIdentifier({ kind: 'iban', value: IBAN })).toBe('NL91•••4300');
    expect(maskIdentifier({ kind: 'card_fingerprint', value: 'Xt5EWLLDS7FJjR1c' })).toBe('Xt•••');
    expect(maskIdentifier({ kind: 'merchant_ref', value: 'CRM-42' })).toBe('CR•••');
  });
});

describe('POST /v1/screening: the request', () => {
  const refusal = (body: unknown): string => {
    try {
      parseScreeningRequest(body);
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(400);
      return (err as HttpError).message;
    }
    throw new Error('the request was accepted');
  };

  it('normalises what it takes', () => {
    expect(parseScreeningRequest({ email: ' Jan@Example.NL ', iban: 'nl91 abna 0417 1643 00', merchantRef: null })).toEqual([
      { kind: 'email', value: 'jan@example.nl' },
      { kind: 'iban', value: IBAN },
    ]);
    expect(parseScreeningRequest({ merchantRef: 'CRM-42', cardFingerprint: 'Xt5EWLLDS7FJjR1c' })).toEqual([
      { kind: 'merchant_ref', value: 'CRM-42' },
      { kind: 'card_fingerprint', value: 'Xt5EWLLDS7FJjR1c' },
    ]);
  });

  it('refuses a body without identifiers, saying which ones it takes', () => {
    expect(refusal({})).toBe('at least one identifier is required: email, merchantRef, iban or cardFingerprint');
    expect(refusal({ email: null, iban: null })).toMatch(/at least one identifier is required/);
    expect(refusal(undefined)).toMatch(/send a JSON object/);
    expect(refusal([{ email: 'jan@example.nl' }])).toMatch(/send a JSON object/);
  });

  it('refuses what is not an identifier, an unknown field and a wrong type, naming the field and never echoing the value', () => {
    const bad = refusal({ email: 'jan at example.nl' });
    expect(bad).toMatch(/^email is not an e-mail address/);
    expect(bad).not.toContain('jan at');
    expect(refusal({ iban: 'NL92ABNA0417164300' })).toMatch(/^iban is not a valid IBAN/);
    expect(refusal({ email: 'jan@example.nl', phone: '+31 6 1234 5678' })).toMatch(/^unknown field phone: screening takes email, merchantRef, iban and cardFingerprint/);
    expect(refusal({ email: 42 })).toBe('email must be a string');
    expect(refusal({ merchantRef: '' })).toBe('merchantRef must not be empty');
  });
});

describe('the identifier-hash secret in the config', () => {
  it('is required and checked like every other secret', () => {
    const yaml = testConfigYaml({ simUrl: 'http://127.0.0.1:9', hubPort: 0, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45 });
    expect(() => parseConfig(yaml)).not.toThrow();
    expect(() => parseConfig(yaml.replace(/, identifierHashSecret: [^ }]+/, ''))).toThrow(/hub\.identifierHashSecret: required: the identifier-hash secret/);
    expect(() => parseConfig(yaml.replace(/identifierHashSecret: [^ }]+/, 'identifierHashSecret: change-me-change-me-change-me-change-me'))).toThrow(/hub\.identifierHashSecret: is a placeholder/);
    expect(() => parseConfig(yaml.replace(/identifierHashSecret: [^ }]+/, `identifierHashSecret: ${testSecret('identifierHash').slice(0, 31)}`))).toThrow(/hub\.identifierHashSecret: must be at least 32 bytes/);
  });

  it('a first-start secrets file written before it existed gets it added, the other secrets kept', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-secrets-upgrade-'));
    try {
      const { HUB_IDENTIFIER_HASH_SECRET: _new, ...olderKinds } = EXAMPLE_SECRETS;
      const older = Object.fromEntries(Object.entries(olderKinds).map(([name, kind]) => [name, testSecret(kind)]));
      const file = path.join(dir, FIRST_START_SECRETS_FILE);
      fs.writeFileSync(file, YAML.stringify(older), { mode: 0o600 });
      const first = firstStartSecrets(dir);
      expect(first.created).toBe(false);
      expect(first.values).toMatchObject(older);
      expect(secretProblem(first.values.HUB_IDENTIFIER_HASH_SECRET, 'identifierHash')).toBeUndefined();
      // Written into the file, so the next start (or `npm run token`) reads the same value.
      expect(YAML.parse(fs.readFileSync(file, 'utf8'))).toEqual(first.values);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(firstStartSecrets(dir).values).toEqual(first.values);
      expect(fs.existsSync(`${file}.lock`)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
