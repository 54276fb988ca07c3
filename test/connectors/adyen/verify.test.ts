/**
 * Adyen notification verification, pinned to the published vector of
 * shared/reference/psp-webhooks.md §3.2 (Adyen/adyen-node-api-library:src/__tests__/hmacValidator.spec.ts),
 * negative cases included: every signed field tampered, wrong key, missing signature, key rotation,
 * one bad item among good ones, HTTP Basic auth, another merchant account. Offline: HMAC only.
 */
import { adyenConnector } from '../../../connectors/psp/adyen';
import { adyenProviderConfigSchema, type AdyenProviderConfig } from '../../../connectors/psp/adyen/schema';
import {
  ADYEN_ACK,
  adyenHmac,
  adyenSigningString,
  isValidAdyenSignature,
  verifyAdyenWebhook,
} from '../../../connectors/psp/adyen/verify';
import { WebhookRejection, type InboundRequest } from '../../../connectors/psp/types';
import { adyenItems, adyenNotification, basicAuthHeader, signAdyenItem, type AdyenItem } from '../../../sim/psp/adyen-events';

// The published vector (psp-webhooks.md §3.2), used exactly.
const VECTOR_KEY = 'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00';
const VECTOR_SIGNATURE = 'xhpHvYq2u2Np0rstbZ6QjLGu7JWhvf7Iwaa6EviJSX0=';
const VECTOR_DATA = 'pspReference:originalReference:merchantAccount:reference:1000:EUR:CAPTURE:true';
const vectorItem = (): AdyenItem => ({
  pspReference: 'pspReference',
  originalReference: 'originalReference',
  merchantAccountCode: 'merchantAccount',
  merchantReference: 'reference',
  amount: { currency: 'EUR', value: 1000 },
  eventCode: 'CAPTURE',
  // The spec has `new Date("01-01-1970")`; eventDate is not signed, and an item that old is refused
  // since issue 13 (older than maxEventAgeDays at NOW), so here it is a moment before NOW.
  eventDate: '2024-06-03T07:12:00.000Z',
  paymentMethod: 'VISA',
  reason: 'reason',
  success: 'true',
  additionalData: { hmacSignature: VECTOR_SIGNATURE },
});

const OTHER_KEY = '44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056';
const NOW = new Date('2024-06-03T07:12:05Z');

/** Basic auth is required for Adyen (issue 13); every request below carries it unless a case says otherwise. */
const BASIC = { username: 'adyen-acme', password: 's3cret-Pa55' };
const config = (patch: Partial<Record<keyof AdyenProviderConfig, unknown>> = {}): AdyenProviderConfig =>
  adyenProviderConfigSchema.parse({ hmacKeys: VECTOR_KEY, basicAuth: BASIC, ...patch });

const request = (body: unknown, headers: Record<string, string> = { authorization: basicAuthHeader(BASIC.username, BASIC.password) }): InboundRequest => ({
  headers,
  rawBody: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8'),
  contentType: 'application/json',
});

const delivery = (...items: AdyenItem[]) => ({ live: 'false', notificationItems: items.map((i) => ({ NotificationRequestItem: i })) });

function rejectionOf(fn: () => unknown): WebhookRejection {
  try {
    fn();
  } catch (err) {
    if (err instanceof WebhookRejection) return err;
    throw err;
  }
  throw new Error('expected a WebhookRejection, got none');
}

/** The §3.5 example item, signed with the vector key. */
const refused = (patch: Partial<AdyenItem> = {}): AdyenItem =>
  signAdyenItem(
    {
      ...adyenItems.refusedRecurring({ merchantReference: 'ACME-0042', pspReference: 'QFQTPCQ8HXSKGK82', amount: 4900, shopperReference: 'cust-8812', eventDate: '2024-06-03T09:12:00+02:00' }),
      ...patch,
    },
    VECTOR_KEY,
  );

describe('the published vector (psp-webhooks.md §3.2)', () => {
  it('builds the documented signing string from the item', () => {
    expect(adyenSigningString(vectorItem())).toBe(VECTOR_DATA);
  });

  it('computes the published signature with the hex-decoded key, base64', () => {
    expect(adyenHmac(VECTOR_DATA, VECTOR_KEY)).toBe(VECTOR_SIGNATURE);
  });

  it('accepts the item carrying the published signature', () => {
    expect(isValidAdyenSignature(vectorItem(), [VECTOR_KEY])).toBe(true);
  });

  it("rejects the library's own invalid sample (`notValidSign`) without throwing", () => {
    expect(isValidAdyenSignature({ ...vectorItem(), additionalData: { hmacSignature: 'notValidSign' } }, [VECTOR_KEY])).toBe(false);
  });

  it('also matches the library spec\'s raw-string vector (the key is hex-decoded, not used as text)', () => {
    // Adyen/adyen-node-api-library:src/__tests__/hmacValidator.spec.ts "should encrypt correctly".
    const data =
      'countryCode:currencyCode:merchantAccount:merchantReference:paymentAmount:sessionValidity:skinCode:NL:EUR:MagentoMerchantTest2:TEST-PAYMENT-2017-02-01-14\\:02\\:05:199:2017-02-02T14\\:02\\:05+01\\:00:PKz2KML1';
    expect(adyenHmac(data, VECTOR_KEY)).toBe('34oR8T1whkQWTv9P+SzKyp8zhusf9n0dpqrm9nsqSJs=');
  });

  it('passes a whole delivery carrying the vector item, one raw event answered [accepted]', () => {
    const out = verifyAdyenWebhook(request(delivery(vectorItem())), config(), NOW);
    expect(out.ack).toEqual({ status: 200, body: '[accepted]', contentType: 'text/plain' });
    expect(out.ack).toEqual(ADYEN_ACK);
    expect(out.events).toEqual([
      {
        providerEventId: 'pspReference:CAPTURE:true',
        eventType: 'CAPTURE',
        occurredAt: '2024-06-03T07:12:00.000Z',
        payload: { live: 'false', NotificationRequestItem: vectorItem() },
      },
    ]);
  });

  it('signs an item without originalReference over an empty field (`pspReference::merchantAccountCode…`, §3.5)', () => {
    const item = refused();
    expect(adyenSigningString(item)).toBe('QFQTPCQ8HXSKGK82::AcmeECOM:ACME-0042:4900:EUR:AUTHORISATION:false');
    expect(isValidAdyenSignature(item, [VECTOR_KEY])).toBe(true);
  });

  // Regression test: this once failed (parser fuzz test, seed -1526822340: a signed field {"toString":0}
  // made the join throw a TypeError, a 500 instead of a refusal).
  it('refuses a signed field that is an object (a 400), never throws anything else', () => {
    for (const bad of [{ toString: 0 }, { a: 1 }, ['x']]) {
      const item = { ...vectorItem(), pspReference: bad } as unknown as Parameters<typeof adyenSigningString>[0];
      let err: unknown;
      try {
        isValidAdyenSignature(item, [VECTOR_KEY]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(WebhookRejection);
      expect(err).toMatchObject({ status: 400, message: 'notification item field pspReference is not a string, number or boolean' });
    }
  });
});

type Case = {
  name: string;
  body: () => unknown;
  cfg?: () => AdyenProviderConfig;
  headers?: Record<string, string>;
} & ({ passes: true; ids?: string[] } | { passes: false; status: number; message: RegExp });

const tamper = (item: AdyenItem, patch: Partial<AdyenItem>): AdyenItem => ({ ...item, ...patch });

const cases: Case[] = [
  { name: 'the §3.5 refused authorisation, signed with the key', body: () => delivery(refused()), passes: true, ids: ['QFQTPCQ8HXSKGK82:AUTHORISATION:false'] },
  {
    name: 'the amount changed after signing',
    body: () => delivery(tamper(refused(), { amount: { currency: 'EUR', value: 490 } })),
    passes: false,
    status: 401,
    message: /HMAC signature of notification item 0 does not match/,
  },
  ...(
    [
      ['pspReference', { pspReference: 'QFQTPCQ8HXSKGK83' }],
      ['originalReference', { originalReference: 'QFQTPCQ8HXSKGK00' }],
      ['merchantAccountCode', { merchantAccountCode: 'AcmePOS' }],
      ['merchantReference', { merchantReference: 'ACME-0043' }],
      ['currency', { amount: { currency: 'USD', value: 4900 } }],
      ['eventCode', { eventCode: 'CAPTURE' }],
      ['success', { success: 'true' as const }],
    ] as [string, Partial<AdyenItem>][]
  ).map(([field, patch]): Case => ({
    name: `the signed field ${field} changed after signing`,
    body: () => delivery(tamper(refused(), patch)),
    passes: false,
    status: 401,
    message: /does not match/,
  })),
  {
    name: 'unsigned fields changed after signing (reason, eventDate, paymentMethod are not covered)',
    body: () => delivery(tamper(refused(), { reason: 'Refused', eventDate: '2024-06-04T09:12:00+02:00', paymentMethod: 'mc' })),
    passes: true,
  },
  {
    name: 'a signature made with another key',
    body: () => delivery(signAdyenItem(refused(), OTHER_KEY)),
    passes: false,
    status: 401,
    message: /does not match/,
  },
  {
    name: 'no additionalData.hmacSignature',
    body: () => {
      const item = refused();
      const { hmacSignature: _dropped, ...rest } = item.additionalData!;
      return delivery({ ...item, additionalData: rest });
    },
    passes: false,
    status: 401,
    message: /^Missing hmacSignature$/,
  },
  { name: 'no additionalData at all', body: () => delivery({ ...refused(), additionalData: undefined }), passes: false, status: 401, message: /^Missing hmacSignature$/ },
  {
    name: 'a signature of the right length that is not base64 of the HMAC',
    body: () => delivery(tamper(refused(), { additionalData: { hmacSignature: 'A'.repeat(44) } })),
    passes: false,
    status: 401,
    message: /does not match/,
  },
  {
    name: 'rotation: the second configured key matches',
    cfg: () => config({ hmacKeys: [OTHER_KEY, VECTOR_KEY] }),
    body: () => delivery(refused()),
    passes: true,
  },
  {
    name: 'rotation: the first configured key matches',
    cfg: () => config({ hmacKeys: [VECTOR_KEY, OTHER_KEY] }),
    body: () => delivery(refused()),
    passes: true,
  },
  {
    name: 'rotation: no configured key matches',
    cfg: () => config({ hmacKeys: [OTHER_KEY] }),
    body: () => delivery(refused()),
    passes: false,
    status: 401,
    message: /does not match/,
  },
  {
    name: 'two good items: two raw events',
    body: () => delivery(refused(), refused({ pspReference: 'KHQC5N7G84BLNK43', merchantReference: 'ACME-0043' })),
    passes: true,
    ids: ['QFQTPCQ8HXSKGK82:AUTHORISATION:false', 'KHQC5N7G84BLNK43:AUTHORISATION:false'],
  },
  {
    name: 'three items of which the middle one is tampered: the whole delivery is refused',
    body: () =>
      delivery(
        refused(),
        tamper(refused({ pspReference: 'KHQC5N7G84BLNK43' }), { amount: { currency: 'EUR', value: 1 } }),
        refused({ pspReference: 'ZZQC5N7G84BLNK44' }),
      ),
    passes: false,
    status: 401,
    message: /item 1 does not match \(the whole delivery is refused\)/,
  },
  {
    name: 'a good item beside an unsigned one',
    body: () => delivery(refused(), { ...refused({ pspReference: 'KHQC5N7G84BLNK43' }), additionalData: {} }),
    passes: false,
    status: 401,
    message: /^Missing hmacSignature$/,
  },
  // --- HTTP Basic auth ----------------------------------------------------------------------
  {
    name: 'Basic auth configured, right credentials',
    cfg: () => config({ basicAuth: { username: 'adyen-acme', password: 's3cret-Pa55' } }),
    headers: { authorization: basicAuthHeader('adyen-acme', 's3cret-Pa55') },
    body: () => delivery(refused()),
    passes: true,
  },
  {
    name: 'Basic auth configured, wrong password',
    cfg: () => config({ basicAuth: { username: 'adyen-acme', password: 's3cret-Pa55' } }),
    headers: { authorization: basicAuthHeader('adyen-acme', 's3cret-Pa56') },
    body: () => delivery(refused()),
    passes: false,
    status: 401,
    message: /^wrong HTTP Basic credentials$/,
  },
  {
    name: 'Basic auth configured, wrong user name',
    cfg: () => config({ basicAuth: { username: 'adyen-acme', password: 's3cret-Pa55' } }),
    headers: { authorization: basicAuthHeader('adyen-globex', 's3cret-Pa55') },
    body: () => delivery(refused()),
    passes: false,
    status: 401,
    message: /^wrong HTTP Basic credentials$/,
  },
  {
    name: 'Basic auth configured, header missing (even with a valid HMAC)',
    cfg: () => config({ basicAuth: { username: 'adyen-acme', password: 's3cret-Pa55' } }),
    headers: {},
    body: () => delivery(refused()),
    passes: false,
    status: 401,
    message: /^missing HTTP Basic credentials$/,
  },
  {
    name: 'Basic auth configured, another scheme sent',
    cfg: () => config({ basicAuth: { username: 'adyen-acme', password: 's3cret-Pa55' } }),
    headers: { authorization: 'Bearer s3cret-Pa55' },
    body: () => delivery(refused()),
    passes: false,
    status: 401,
    message: /^missing HTTP Basic credentials$/,
  },
  {
    name: 'Basic auth right but the HMAC wrong',
    cfg: () => config({ basicAuth: { username: 'adyen-acme', password: 's3cret-Pa55' } }),
    headers: { authorization: basicAuthHeader('adyen-acme', 's3cret-Pa55') },
    body: () => delivery(signAdyenItem(refused(), OTHER_KEY)),
    passes: false,
    status: 401,
    message: /does not match/,
  },
  {
    name: 'unsigned fields (shopperReference) changed after signing, sent without the Basic credentials',
    headers: {},
    body: () => delivery(tamper(refused(), { additionalData: { ...refused().additionalData, shopperReference: 'someone-else' } })),
    passes: false,
    status: 401,
    message: /^missing HTTP Basic credentials$/,
  },
  // --- merchant account ---------------------------------------------------------------------
  { name: 'merchantAccount configured and matching', cfg: () => config({ merchantAccount: 'AcmeECOM' }), body: () => delivery(refused()), passes: true },
  {
    name: 'a validly signed item for another merchant account',
    cfg: () => config({ merchantAccount: 'AcmeECOM' }),
    body: () => delivery(refused(), refused({ pspReference: 'KHQC5N7G84BLNK43', merchantAccountCode: 'GlobexECOM' })),
    passes: false,
    status: 401,
    message: /item 1 is for merchant account GlobexECOM, this webhook is configured for AcmeECOM/,
  },
  // --- not a notification -------------------------------------------------------------------
  { name: 'a body that is not JSON', body: () => 'pspReference=QFQTPCQ8HXSKGK82&eventCode=AUTHORISATION', passes: false, status: 400, message: /not JSON/ },
  { name: 'JSON without notificationItems', body: () => ({ live: 'false' }), passes: false, status: 400, message: /^not an Adyen Standard notification: notificationItems:/ },
  { name: 'an empty notificationItems list', body: () => ({ live: 'false', notificationItems: [] }), passes: false, status: 400, message: /at least one item/ },
  {
    name: 'an item without amount',
    body: () => delivery({ ...refused(), amount: undefined as never }),
    passes: false,
    status: 400,
    message: /notificationItems\.0\.NotificationRequestItem\.amount/,
  },
];

describe('verifyAdyenWebhook', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const cfg = c.cfg ? c.cfg() : config();
    const req = request(c.body(), c.headers);
    if (c.passes) {
      const out = verifyAdyenWebhook(req, cfg, NOW);
      expect(out.ack).toEqual(ADYEN_ACK);
      expect(out.events.length).toBeGreaterThan(0);
      if (c.ids) expect(out.events.map((e) => e.providerEventId)).toEqual(c.ids);
    } else {
      const err = rejectionOf(() => verifyAdyenWebhook(req, cfg, NOW));
      expect(err.status).toBe(c.status);
      expect(err.message).toMatch(c.message);
    }
  });

  it('never names a key or the expected signature in a refusal', () => {
    const item = signAdyenItem(refused(), OTHER_KEY);
    const err = rejectionOf(() => verifyAdyenWebhook(request(delivery(item)), config(), NOW));
    expect(err.message).not.toContain(VECTOR_KEY);
    expect(err.message).not.toContain(adyenHmac(adyenSigningString(item), VECTOR_KEY));
  });

  it('gives the same event id to the same item delivered again (dedup on pspReference + eventCode + success)', () => {
    const body = adyenNotification([refused()], {});
    const a = verifyAdyenWebhook(request(body), config(), NOW);
    const b = verifyAdyenWebhook(request(body), config(), NOW);
    expect(a.events[0].providerEventId).toBe(b.events[0].providerEventId);
    // A different outcome of the same payment is a different event.
    const success = verifyAdyenWebhook(request(delivery(refused({ success: 'true' }))), config(), NOW);
    expect(success.events[0].providerEventId).toBe('QFQTPCQ8HXSKGK82:AUTHORISATION:true');
  });

  it('stores each item with the delivery`s live flag, exactly as received, and occurredAt from eventDate in UTC', () => {
    const item = refused();
    const out = verifyAdyenWebhook(request({ live: 'true', notificationItems: [{ NotificationRequestItem: item }] }), config(), NOW);
    expect(out.events[0]).toEqual({
      providerEventId: 'QFQTPCQ8HXSKGK82:AUTHORISATION:false',
      eventType: 'AUTHORISATION',
      occurredAt: '2024-06-03T07:12:00.000Z',
      payload: { live: 'true', NotificationRequestItem: item },
    });
  });

  it('is what the registered connector uses', () => {
    const out = adyenConnector.verify(request(delivery(vectorItem())), config(), NOW);
    expect(out).toEqual(verifyAdyenWebhook(request(delivery(vectorItem())), config(), NOW));
  });

  it('the simulator signs exactly as the connector verifies', () => {
    const body = adyenNotification([adyenItems.authorised({ merchantReference: 'ACME-0050', amount: 1500 })], { hmacKey: OTHER_KEY });
    expect(verifyAdyenWebhook(request(body), config({ hmacKeys: OTHER_KEY }), NOW).events).toHaveLength(1);
  });
});
