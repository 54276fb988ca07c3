/**
 * Secrets never reach logs (design.md habit 8): free text is masked by pattern, objects by key
 * name, and the winston logger runs every line through both.
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import * as redaction from '../../src/observability/redact';
import { MIN_REDACTABLE_LENGTH, redact, redactText, redactTextFully } from '../../src/observability/redact';
import { createLogger } from '../../src/observability/logger';

// Values shaped like the real thing (none of them is a live credential).
const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhY21lIiwiYXVkIjoiY29sbGVjdGlvbi1odWIifQ.4pcPyMD09olPSyXnrXCjTwXyr4BsezdI1AVTmud2fU4';
const SK = 'sk_test_51Hq2xKLmNoPqRsTuVwXyZ0123456789abcdef';
const WHSEC = 'whsec_5aB9cD3eF7gH1iJ5kL9mN3oP7qR1sT5u';
const SIG_V1 = '5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd';
const SIG_V1_OLD = '6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39';
const STRIPE_SIGNATURE = `t=1492774577,v1=${SIG_V1}`;
const IBAN = 'NL91ABNA0417164300';
const IBAN_SPACED = 'NL91 ABNA 0417 1643 00';
const CARD = '4242424242424242';
const CARD_SPACED = '4242 4242 4242 4242';
const CARD_DASHED = '4242-4242-4242-4242';

/** The parts of a secret that must not survive: the whole value and any long run of it. */
const leaks = (out: string, secret: string) => out.includes(secret) || out.includes(secret.replace(/\s|-/g, ''));

describe('redactText', () => {
  it.each([
    ['a Bearer token', `Authorization: Bearer abc.def-ghi_jkl~123`, 'abc.def-ghi_jkl~123'],
    ['a JWT outside a Bearer header', `token=${JWT} and more`, JWT],
    ['a JWT signature alone', `token=${JWT}`, JWT.split('.')[2]],
    ['a Stripe secret key', `stripe key ${SK} used`, SK],
    ['a restricted key', 'rk_live_51AbCdEfGhIjKlMnOpQr', 'rk_live_51AbCdEfGhIjKlMnOpQr'],
    ['a webhook secret', `secret=${WHSEC}`, WHSEC],
    ['a Stripe-Signature value', `Stripe-Signature: ${STRIPE_SIGNATURE}`, SIG_V1],
    ['an IBAN without spaces', `pay to ${IBAN} please`, IBAN],
    ['an IBAN with spaces', `pay to ${IBAN_SPACED} please`, IBAN_SPACED],
    ['a German IBAN', 'DE89370400440532013000', 'DE89370400440532013000'],
    ['a card number', `card ${CARD} declined`, CARD],
    ['a card number in groups of four', `card ${CARD_SPACED} declined`, CARD_SPACED],
    ['a card number with dashes', `card ${CARD_DASHED} declined`, CARD_DASHED],
    ['an Amex number (15 digits)', 'card 378282246310005 declined', '378282246310005'],
    ['a Mollie live key', 'key live_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM', 'dHar4XY7LxsDOtmnkVtjNVWXLSlXsM'],
  ])('masks %s', (_name, text, secret) => {
    const out = redactText(text);
    expect(leaks(out, secret)).toBe(false);
    expect(out).toMatch(/redacted/);
  });

  it('keeps the rest of the text readable', () => {
    expect(redactText(`card ${CARD} declined for cus_123`)).toBe('card [pan redacted] declined for cus_123');
    expect(redactText(`Bearer ${JWT}`)).toBe('Bearer [redacted]');
  });

  it('leaves ordinary ids, amounts and dates alone', () => {
    const text = 'invoice in_1PqR2s for cus_NffrFeUfNV2Hib: 4900 EUR due 2026-03-02T10:00:00Z, attempt 3, case cse_0123abcd';
    expect(redactText(text)).toBe(text);
  });

  // Regression test: this once failed (found by these tests, fixed in src).
  it('masks every signature of a Stripe-Signature header with several (secret rotation)', () => {
    const out = redactText(`Stripe-Signature: t=1492774577,v1=${SIG_V1},v1=${SIG_V1_OLD},v0=${SIG_V1_OLD}`);
    expect(out).not.toContain(SIG_V1);
    expect(out).not.toContain(SIG_V1_OLD);
  });
});

describe('redact (objects)', () => {
  it('masks secret-named keys at any depth, in any case, and patterns in other strings', () => {
    const input = {
      merchantId: 'acme',
      headers: { Authorization: 'Basic dXNlcjpwYXNz', 'Stripe-Signature': STRIPE_SIGNATURE, 'content-type': 'application/json' },
      config: { providers: { stripe: { webhookSecret: WHSEC, apiKey: 'plain-looking-key' } }, auth: { outbound: { secret: 'a-32-character-shared-secret-xyz' } } },
      debtor: { name: 'Jan Jansen', iban: 'not-an-iban-shape', bank: [{ note: `from ${IBAN_SPACED}` }] },
      list: [{ token: 'opaque' }, { password: 'hunter2' }, { client_secret: 'pi_123_secret_456' }],
      note: `charged ${CARD_SPACED}`,
      count: 3,
      ok: true,
      missing: null,
    };
    const out = redact(input);
    const text = JSON.stringify(out);
    for (const secret of ['dXNlcjpwYXNz', SIG_V1, WHSEC, 'plain-looking-key', 'a-32-character-shared-secret-xyz', 'not-an-iban-shape', IBAN_SPACED, 'opaque', 'hunter2', 'pi_123_secret_456', CARD_SPACED]) {
      expect(leaks(text, secret)).toBe(false);
    }
    expect(out).toMatchObject({
      merchantId: 'acme',
      headers: { Authorization: '[redacted]', 'Stripe-Signature': '[redacted]', 'content-type': 'application/json' },
      config: { providers: { stripe: { webhookSecret: '[redacted]', apiKey: '[redacted]' } } },
      debtor: { name: 'Jan Jansen', iban: '[redacted]' },
      count: 3,
      ok: true,
      missing: null,
    });
  });

  it('does not change its input', () => {
    const input = { apiKey: 'k', nested: { token: 't' } };
    redact(input);
    expect(input).toEqual({ apiKey: 'k', nested: { token: 't' } });
  });

  it('replaces a Buffer by its size (raw webhook bodies hold card data)', () => {
    const body = Buffer.from(`{"card":"${CARD}"}`);
    expect(redact({ body })).toEqual({ body: `[${body.length} bytes]` });
  });
});

describe('the winston logger', () => {
  function capture() {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (d) => (out += d));
    const logger = createLogger({ stream, level: 'debug' });
    return { logger, text: () => out };
  }

  const SECRETS = [JWT, SK, WHSEC, SIG_V1, IBAN, IBAN_SPACED, CARD, CARD_SPACED, CARD_DASHED, 'hunter2', 'plain-api-key-123'];

  it('writes none of the secrets in clear, in the message or in the fields', async () => {
    const { logger, text } = capture();
    logger.info(`calling agency with Bearer ${JWT} for ${IBAN_SPACED}`);
    logger.warn('stripe webhook rejected', { headers: { 'stripe-signature': STRIPE_SIGNATURE, authorization: `Bearer ${JWT}` }, body: `{"card":"${CARD}"}` });
    logger.error('config', { merchant: { providers: { stripe: { webhookSecret: WHSEC, apiKey: 'plain-api-key-123' } } }, note: `key ${SK}` });
    logger.debug('debtor', { debtor: { iban: IBAN, payments: [{ card: CARD_DASHED }, { text: `paid with ${CARD_SPACED} and ${IBAN}` }] }, password: 'hunter2' });
    logger.info(`signature ${STRIPE_SIGNATURE}`);
    await new Promise((r) => setImmediate(r));
    const out = text();
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    for (const secret of SECRETS) expect({ secret, leaked: out.includes(secret) }).toEqual({ secret, leaked: false });
    // Still useful: level, message and non-secret fields are there.
    expect(JSON.parse(lines[1])).toMatchObject({ level: 'warn', message: 'stripe webhook rejected', service: 'collection-hub' });
  });

  it('masks secrets in an Error passed as a field', async () => {
    const { logger, text } = capture();
    logger.error('agency call failed', { err: { message: `401 for Bearer ${JWT}`, config: { headers: { Authorization: `Bearer ${JWT}` } } } });
    await new Promise((r) => setImmediate(r));
    expect(text()).not.toContain(JWT);
    expect(text()).toContain('agency call failed');
  });

  it('masks secrets in a logged Error message', async () => {
    const { logger, text } = capture();
    logger.error(new Error(`request with ${SK} failed`));
    logger.error('wrapped', new Error(`whsec ${WHSEC} rejected`));
    await new Promise((r) => setImmediate(r));
    expect(text()).not.toContain(SK);
    expect(text()).not.toContain(WHSEC);
  });
});

describe('IBANs are recognised by country and checksum, not by shape alone', () => {
  it('masks valid IBANs and leaves PSP ids that look alike readable', () => {
    expect(redactText('debit from DE89370400440532013000')).toBe('debit from [iban redacted]');
    // GoCardless event and payment ids have an IBAN's shape but no IBAN country or checksum.
    expect(redactText('event EV0123ABCD4567 payment PM01ABCD2345EF')).toBe('event EV0123ABCD4567 payment PM01ABCD2345EF');
    // One wrong check digit: not an IBAN.
    expect(redactText('NL92ABNA0417164300')).toBe('NL92ABNA0417164300');
  });
});

describe('the fast path for text that cannot hold a secret', () => {
  it('masks a secret of exactly the shortest length a pattern matches, and passes anything shorter as it is', () => {
    expect(MIN_REDACTABLE_LENGTH).toBe(7);
    // The two shortest texts any pattern masks, at exactly the minimum length.
    expect(redactText('whsec_x')).toBe('[secret redacted]');
    expect(redactText('eyJa.b.')).toBe('[jwt redacted]');
    // One character shorter, nothing can match: returned untouched (the same string).
    for (const short of ['whsec_', 'eyJa.b', 'Bearer', 'acme', '']) expect(redactText(short)).toBe(short);
  });

  it('still masks every pattern just past its own shortest form', () => {
    expect(redactText('Bearer x')).toBe('Bearer [redacted]');
    expect(redactText('sk_live_x')).toBe('[key redacted]');
    expect(redactText('t=1,v1=a')).toBe('[signature redacted]');
    expect(redactText('4242424242424')).toBe('4242424242424'); // 13 digits, not Luhn-valid
    expect(redactText('4222222222222')).toBe('[pan redacted]'); // 13 digits, Luhn-valid (Visa test number)
    expect(redactText('MT84MALT011000012345MTLCAST001S')).toBe('[iban redacted]');
  });

  it('gives the same answer as running every pattern, on any text', () => {
    // Text built from the pieces the patterns look for, so that many samples do hold a secret.
    const piece = fc.constantFrom(
      'Bearer ', 'eyJ', 'abc', '.', '_', '-', ' ', 'sk_', 'live_', 'test_', 'sandbox_', 'whsec_', 't=', '1492774577', ',v1=', 'a9f',
      'NL91ABNA0417164300', 'NL91 ABNA 0417 1643 00', 'DE89', '4242', '4242 4242 4242 4242', '378282246310005', '0', '9', 'A', 'Z', 'x',
      'cus_NffrFeUfNV2Hib', 'in_1PqR2s', '2026-03-02T10:00:00Z', 'dHar4XY7LxsDOtmnkVtjNVWXLSlXsM',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }).map((p) => p.join('')), (text) => {
        expect(redactText(text)).toBe(redactTextFully(text));
      }),
      { numRuns: 3000 },
    );
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (text) => expect(redactText(text)).toBe(redactTextFully(text))), { numRuns: 2000 });
  });
});

describe('a disabled log level costs nothing', () => {
  afterEach(() => jest.restoreAllMocks());

  it('does not redact (or copy) the metadata of a line below the level, and still logs at the level', async () => {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (d) => (out += d));
    const logger = createLogger({ stream, level: 'warn' });
    const redactSpy = jest.spyOn(redaction, 'redact');
    const redactTextSpy = jest.spyOn(redaction, 'redactText');

    logger.info('case submitted', { merchantId: 'acme', caseId: 'cse_1', body: { card: '4242424242424242' } });
    logger.debug('claim', { claimId: 'clm_1' });
    logger.log('info', 'through log()', { caseId: 'cse_2' });
    await new Promise((r) => setImmediate(r));
    expect(redactSpy).not.toHaveBeenCalled();
    expect(redactTextSpy).not.toHaveBeenCalled();
    expect(out).toBe('');

    logger.warn('agency slow', { partner: 'refagency', note: 'card 4242424242424242' });
    await new Promise((r) => setImmediate(r));
    expect(redactSpy).toHaveBeenCalled();
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 'warn', message: 'agency slow', partner: 'refagency', note: 'card [pan redacted]' });
  });

  it('follows a level changed at run time', async () => {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (d) => (out += d));
    const logger = createLogger({ stream, level: 'warn' });
    logger.info('before');
    logger.level = 'info';
    logger.info('after', { caseId: 'cse_1' });
    await new Promise((r) => setImmediate(r));
    expect(out.trim().split('\n').map((l) => JSON.parse(l).message)).toEqual(['after']);
  });
});
