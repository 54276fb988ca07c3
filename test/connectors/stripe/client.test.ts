/**
 * createStripeClient: the SDK instance points at `apiBase` when set (a fake on loopback here),
 * does not retry against it, and never names the key in its errors.
 *
 * A real loopback server stands in for nock: nock 15 is ESM-only and this jest setup (CommonJS,
 * Node 20) cannot load it. Every request in this file goes to 127.0.0.1, so none can leak out.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createStripeClient } from '../../../connectors/psp/stripe/client';

interface Seen {
  method?: string;
  url?: string;
  authorization?: string;
}

let server: http.Server;
let base: string;
let seen: Seen[];
let answer: { status: number; body: unknown };

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => {
      res.writeHead(answer.status, { 'content-type': 'application/json', 'request-id': 'req_fake' });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen = [];
  answer = { status: 200, body: {} };
});

describe('createStripeClient', () => {
  it('sends lookups to apiBase over http with the configured key', async () => {
    answer = { status: 200, body: { id: 'in_1Lookup', object: 'invoice', amount_due: 4900, currency: 'eur' } };
    const stripe = createStripeClient({ apiKey: 'sk_test_123', apiBase: base });
    const invoice = await stripe.invoices.retrieve('in_1Lookup');
    expect(invoice.id).toBe('in_1Lookup');
    expect(seen).toEqual([{ method: 'GET', url: '/v1/invoices/in_1Lookup', authorization: 'Bearer sk_test_123' }]);
  });

  it('does not retry a failing fake (maxNetworkRetries 0)', async () => {
    answer = { status: 500, body: { error: { type: 'api_error', message: 'fake down' } } };
    const stripe = createStripeClient({ apiKey: 'sk_test_123', apiBase: base });
    await expect(stripe.invoices.retrieve('in_1Lookup')).rejects.toThrow(/fake down/);
    expect(seen).toHaveLength(1);
  });

  it('uses the SDK defaults (api.stripe.com over https) without apiBase', () => {
    const stripe = createStripeClient({ apiKey: 'sk_test_123' });
    expect(stripe.getApiField('host')).toBe('api.stripe.com');
    expect(stripe.getApiField('protocol')).toBe('https');
  });

  it('takes the default port of the apiBase scheme when none is given', () => {
    const stripe = createStripeClient({ apiKey: 'sk_test_123', apiBase: 'https://stripe-sandbox.example.test' });
    expect(stripe.getApiField('host')).toBe('stripe-sandbox.example.test');
    expect(String(stripe.getApiField('port'))).toBe('443');
    expect(stripe.getApiField('protocol')).toBe('https');
  });

  it('refuses to build a client without an apiKey', () => {
    expect(() => createStripeClient({})).toThrow('stripe: apiKey is not configured; it is needed for API calls');
  });
});
