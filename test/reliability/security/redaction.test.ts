/**
 * Guarantee 8, the redactor's edges found while proving it: card numbers glued to letters or sent
 * as JSON numbers, credentials under the names the PSP connectors use (accessToken, hmacKeys,
 * webhookSigningSecret, basicAuth), and long numbers that are not card numbers (Adyen PSP
 * references, millisecond timestamps) left readable because they fail the Luhn check.
 */
import { luhnValid, redact, redactText } from '../../../src/observability/redact';

describe('redaction edges', () => {
  it('masks card numbers glued to text or given as numbers', () => {
    expect(redactText('ref card4242424242424242 ok')).not.toContain('4242424242424242');
    expect(redactText('pan_4242424242424242')).not.toContain('4242424242424242');
    expect(redact({ metadata: { raw: 4242424242424242, amex: 378282246310005 } })).toEqual({ metadata: { raw: '[pan redacted]', amex: '[pan redacted]' } });
  });

  it('leaves long numbers that are not card numbers readable', () => {
    const pspReference = '8815329842815469';
    const epochMs = '1732380000001';
    expect(luhnValid(pspReference)).toBe(false);
    expect(luhnValid(epochMs)).toBe(false);
    expect(redactText(`psp ${pspReference} at ${epochMs}`)).toBe(`psp ${pspReference} at ${epochMs}`);
    expect(redact({ amount: 4900, created: 1732380000, at: 1732380000001 })).toEqual({ amount: 4900, created: 1732380000, at: 1732380000001 });
  });

  it('masks the credentials of every connector config by key name', () => {
    const config = {
      stripe: { webhookSecret: 'whsec_a', apiKey: 'sk_test_b' },
      adyen: { hmacKeys: ['44782DEF547AAA06C910C43932B1EB0C'], basicAuth: { username: 'u', password: 'p' } },
      gocardless: { webhookSecret: 'gc_s', accessToken: 'sandbox_abc' },
      mollie: { apiKey: 'test_x', webhookSigningSecret: ['m1', 'm2'] },
      headers: { 'x-api-key': 'k', 'Proxy-Authorization': 'Basic eA==' },
      auth: { outbound: { secret: 's' }, inbound: { publicKey: 'pem', privateKeyPem: 'priv' } },
    };
    const out = JSON.stringify(redact(config));
    for (const v of ['whsec_a', 'sk_test_b', '44782DEF', '"p"', 'gc_s', 'sandbox_abc', 'test_x', 'm1', '"k"', 'eA==', '"priv"']) expect({ v, leaked: out.includes(v) }).toEqual({ v, leaked: false });
    expect(out).toContain('"publicKey":"pem"'); // public keys are not secrets
  });
});
