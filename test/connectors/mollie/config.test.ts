/** The `providers.mollie` config block: what start-up accepts and refuses (design.md habit 6). */
import { mollieConnector } from '../../../connectors/psp/mollie';

const parse = (input: unknown) => mollieConnector.configSchema.safeParse(input);

describe('mollie provider config', () => {
  it('takes an API key alone (classic webhooks, the SDK’s default endpoint)', () => {
    expect(parse({ apiKey: 'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM' })).toEqual({ success: true, data: { apiKey: 'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM' } });
  });

  it('takes a live key, apiBase and a list of signing secrets while rotating', () => {
    const r = parse({ apiKey: 'live_abc123', apiBase: 'http://127.0.0.1:4010/v2/', webhookSigningSecret: ['new_secret', 'old_secret'] });
    expect(r.success && r.data).toEqual({ apiKey: 'live_abc123', apiBase: 'http://127.0.0.1:4010/v2/', webhookSigningSecret: ['new_secret', 'old_secret'] });
  });

  it.each([
    ['no apiKey', {}, 'apiKey'],
    ['a key without the test_/live_ prefix', { apiKey: 'sk_test_123' }, 'apiKey'],
    ['an OAuth access token instead of an API key', { apiKey: 'access_abc123' }, 'apiKey'],
    ['an apiBase that is not an http(s) URL', { apiKey: 'test_abc', apiBase: 'ftp://example.test' }, 'apiBase'],
    ['an empty signing secret', { apiKey: 'test_abc', webhookSigningSecret: '' }, 'webhookSigningSecret'],
    ['an empty list of signing secrets', { apiKey: 'test_abc', webhookSigningSecret: [] }, 'webhookSigningSecret'],
    ['a misspelt key', { apiKey: 'test_abc', apiBse: 'http://127.0.0.1' }, ''],
  ])('refuses %s', (_name, input, path) => {
    const r = parse(input);
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues[0].path.join('.')).toBe(path);
  });

  it('never echoes the key in the message of a refused key', () => {
    const r = parse({ apiKey: 'sk_live_secretvalue' });
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues[0].message).not.toContain('secretvalue');
  });
});
