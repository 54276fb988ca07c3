/** The `providers.stripe` config block: what start-up accepts and refuses (design.md habit 6). */
import { stripeConnector } from '../../../connectors/psp/stripe';

const parse = (input: unknown) => stripeConnector.configSchema.safeParse(input);

describe('stripe provider config', () => {
  it('takes one secret and defaults the tolerance to 300 s', () => {
    expect(parse({ webhookSecret: 'whsec_a' })).toEqual({
      success: true,
      data: { webhookSecret: 'whsec_a', toleranceSeconds: 300 },
    });
  });

  it('takes a list of secrets while rotating, plus apiKey and apiBase', () => {
    const r = parse({ webhookSecret: ['whsec_new', 'whsec_old'], apiKey: 'sk_test_1', apiBase: 'http://127.0.0.1:12111' });
    expect(r.success && r.data).toEqual({
      webhookSecret: ['whsec_new', 'whsec_old'],
      apiKey: 'sk_test_1',
      apiBase: 'http://127.0.0.1:12111',
      toleranceSeconds: 300,
    });
  });

  it.each([
    ['no webhookSecret', {}, 'webhookSecret'],
    ['an empty webhookSecret', { webhookSecret: '' }, 'webhookSecret'],
    ['an empty list of secrets', { webhookSecret: [] }, 'webhookSecret'],
    ['an apiBase that is not an http(s) URL', { webhookSecret: 'whsec_a', apiBase: 'ftp://example.test' }, 'apiBase'],
    ['a tolerance of 0 (stripe-node would skip the age check)', { webhookSecret: 'whsec_a', toleranceSeconds: 0 }, 'toleranceSeconds'],
    ['a misspelt key', { webhookSecret: 'whsec_a', apiBse: 'http://127.0.0.1' }, ''],
  ])('refuses %s', (_name, input, path) => {
    const r = parse(input);
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues[0].path.join('.')).toBe(path);
  });
});
