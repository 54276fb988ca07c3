/** The `providers.adyen` config block: what start-up accepts and refuses (design.md habit 6). */
import YAML from 'yaml';
import { adyenConnector } from '../../../connectors/psp/adyen';
import { pspConnectors } from '../../../connectors/registry';

const KEY = 'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00';
const parse = (input: unknown) => adyenConnector.configSchema.safeParse(input);
/** The connector's schema takes any password; the hub's config checks its strength (src/config/secrets.ts). */
const BASIC = { username: 'adyen', password: 'pw' };

describe('adyen provider config', () => {
  it('is registered under id adyen', () => {
    expect(pspConnectors.get('adyen')).toBe(adyenConnector);
  });

  it('takes one hex key with the required Basic auth, and defaults the eventDate bounds', () => {
    expect(parse({ hmacKeys: KEY, basicAuth: BASIC })).toEqual({ success: true, data: { hmacKeys: KEY, basicAuth: BASIC, maxClockSkewSeconds: 300, maxEventAgeDays: 31 } });
  });

  it('takes a list of keys while rotating, Basic auth and the merchant account', () => {
    const r = parse({ hmacKeys: [KEY, KEY.toLowerCase()], basicAuth: { username: 'adyen', password: 'pw' }, merchantAccount: 'AcmeECOM' });
    expect(r.success && r.data).toEqual({ hmacKeys: [KEY, KEY.toLowerCase()], basicAuth: { username: 'adyen', password: 'pw' }, merchantAccount: 'AcmeECOM', maxClockSkewSeconds: 300, maxEventAgeDays: 31 });
  });

  it('reads the block as the YAML config writes it', () => {
    const block = YAML.parse(`hmacKeys: ${KEY}\nbasicAuth: { username: adyen, password: pw }\n`);
    expect(parse(block).success).toBe(true);
  });

  it.each([
    ['no hmacKeys', {}, 'hmacKeys', /^required: the HMAC key in hex/],
    ['a key that is not hex', { hmacKeys: 'ZFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00' }, 'hmacKeys', /hex/],
    ['a key of odd length', { hmacKeys: KEY.slice(1) }, 'hmacKeys', /hex/],
    ['a key too short to be Adyen`s', { hmacKeys: 'DFB1EB54' }, 'hmacKeys', /at least 32/],
    ['a key YAML read as a number', { hmacKeys: 12345678901234567890 }, 'hmacKeys', /quote a key in YAML/],
    ['an empty list of keys', { hmacKeys: [] }, 'hmacKeys', /./],
    ['a bad key inside the list', { hmacKeys: [KEY, 'not-hex'] }, 'hmacKeys.1', /hex/],
    ['Basic auth without a password', { hmacKeys: KEY, basicAuth: { username: 'adyen' } }, 'basicAuth.password', /./],
    ['no Basic auth (the HMAC does not cover shopperReference, shopperEmail, reason, eventDate)', { hmacKeys: KEY }, 'basicAuth', /^required: .*shopperReference/],
    ['an empty merchant account', { hmacKeys: KEY, basicAuth: BASIC, merchantAccount: '' }, 'merchantAccount', /./],
    ['a misspelt key', { hmacKeys: KEY, basicAuth: BASIC, hmacKey: KEY }, '', /hmacKey/],
    ['an eventDate bound of 0 days', { hmacKeys: KEY, basicAuth: BASIC, maxEventAgeDays: 0 }, 'maxEventAgeDays', /./],
  ])('refuses %s', (_name, input, path, message) => {
    const r = parse(input);
    expect(r.success).toBe(false);
    if (!r.success) {
      expect(r.error.issues[0].path.join('.')).toBe(path);
      // The first issue is what start-up prints (src/config/load.ts formatIssue).
      expect(r.error.issues[0].message).toMatch(message);
    }
  });
});
