/**
 * Issue 13, item 5: Adyen's HMAC covers eight fields (pspReference, originalReference,
 * merchantAccountCode, merchantReference, amount value and currency, eventCode, success). The ones
 * that say whose debt it is — additionalData.shopperReference and shopperEmail — and reason and
 * eventDate are not signed. So Basic auth is required for Adyen, a delivery without it is refused
 * before anything is stored (even with a valid HMAC), and eventDate is bounded by the delivery's
 * arrival: later than arrival + maxClockSkewSeconds is taken as the arrival time, older than
 * maxEventAgeDays is refused. Through the real hub over HTTP (embedded mode).
 */
import YAML from 'yaml';
import { parseConfig } from '../../../src/config/load';
import { adyenItems, adyenNotification, basicAuthHeader, signAdyenItem, type AdyenItem } from '../../../sim/psp/adyen-events';
import { testConfigYaml } from '../../support/stack';
import { PSP_SECRETS, startSecureStack, type SecureStack } from './support';

const ADYEN = `      adyen:\n        hmacKeys: "${PSP_SECRETS.adyenHmacKey}"\n        basicAuth: { username: ${PSP_SECRETS.adyenBasic.username}, password: "${PSP_SECRETS.adyenBasic.password}" }\n`;
const RIGHT = basicAuthHeader(PSP_SECRETS.adyenBasic.username, PSP_SECRETS.adyenBasic.password);

let stack: SecureStack;
beforeAll(async () => {
  stack = await startSecureStack({ mode: 'embedded', acmeProviders: ADYEN });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

let n = 0;
/** A refused recurring payment of customer `shopper`, signed with acme's HMAC key. */
function item(patch: Partial<Parameters<typeof adyenItems.refusedRecurring>[0]> = {}): AdyenItem {
  n += 1;
  const tag = `${Date.now().toString(36)}${n}`.toUpperCase();
  return signAdyenItem(
    adyenItems.refusedRecurring({ merchantReference: `ACME-UF-${tag}`, pspReference: `UF${tag}`.padEnd(16, 'X').slice(0, 16), amount: 4900, shopperReference: 'cust-genuine', eventDate: new Date(Date.now() - 60_000), ...patch }),
    PSP_SECRETS.adyenHmacKey,
  );
}

async function post(items: AdyenItem[], authorization?: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`${stack.hubUrl}/v1/webhooks/adyen/acme`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: JSON.stringify(adyenNotification(items, {})),
  });
  return { status: r.status, body: await r.text() };
}

async function stored(pspReference: string): Promise<{ occurred_at: Date | null; payload: any }[]> {
  const r = await stack.hub.ctx.db.query<{ occurred_at: Date | null; payload: any }>(
    `SELECT occurred_at, payload FROM inbound_events WHERE provider = 'adyen' AND provider_event_id LIKE $1`,
    [`${pspReference}:%`],
  );
  return r.rows;
}

describe('Adyen: unsigned fields decide nothing without the webhook`s Basic credentials', () => {
  it('a genuine HMAC with shopperReference and shopperEmail swapped for someone else is refused without Basic auth, nothing stored', async () => {
    const genuine = item();
    const tampered: AdyenItem = { ...genuine, additionalData: { ...genuine.additionalData, shopperReference: 'cust-victim', shopperEmail: 'victim@example.org' } };
    const before = await stack.inboundCount();
    const r = await post([tampered]);
    expect(r.status).toBe(401);
    expect(await stored(genuine.pspReference)).toEqual([]);
    expect(await stack.inboundCount()).toBe(before);
  });

  it('the same with wrong Basic credentials is refused too', async () => {
    const genuine = item();
    const tampered: AdyenItem = { ...genuine, reason: 'Fraud', additionalData: { ...genuine.additionalData, shopperReference: 'cust-victim' } };
    const r = await post([tampered], basicAuthHeader(PSP_SECRETS.adyenBasic.username, `${PSP_SECRETS.adyenBasic.password}x`));
    expect(r.status).toBe(401);
    expect(await stored(genuine.pspReference)).toEqual([]);
  });

  it('with the Basic credentials the delivery is taken (the control)', async () => {
    const genuine = item();
    const r = await post([genuine], RIGHT);
    expect(r).toEqual({ status: 200, body: '[accepted]' });
    expect(await stored(genuine.pspReference)).toHaveLength(1);
  });

  it('a config with Adyen but no basicAuth does not start, naming the key', () => {
    const yaml = testConfigYaml({ simUrl: 'http://127.0.0.1:9', hubPort: 0, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45, acmeProviders: `      adyen:\n        hmacKeys: "${PSP_SECRETS.adyenHmacKey}"\n` });
    expect(() => parseConfig(yaml, {})).toThrow(/merchants\.0\.providers\.adyen\.basicAuth: required/);
    const weak = YAML.parse(testConfigYaml({ simUrl: 'http://127.0.0.1:9', hubPort: 0, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45, acmeProviders: ADYEN }));
    weak.merchants[0].providers.adyen.basicAuth.password = 'adyen-pw';
    expect(() => parseConfig(YAML.stringify(weak), {})).toThrow(/merchants\.0\.providers\.adyen\.basicAuth\.password: must be at least 24 characters/);
  });
});

describe('Adyen: eventDate is bounded by the delivery time', () => {
  it('an eventDate in the future is taken as the arrival time (it cannot move a first failure, and so a hand-over)', async () => {
    const future = item({ eventDate: new Date(Date.now() + 30 * 86_400_000) });
    const sent = Date.now();
    expect((await post([future], RIGHT)).status).toBe(200);
    const [row] = await stored(future.pspReference);
    const at = new Date(row.occurred_at!).getTime();
    expect(at).toBeGreaterThanOrEqual(sent - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 1000);
    // The item itself is stored as received.
    expect(row.payload.NotificationRequestItem.eventDate).toBe(future.eventDate);
  });

  it('an eventDate within the clock skew is kept as it is', async () => {
    const soon = new Date(Date.now() + 60_000);
    const ok = item({ eventDate: soon });
    expect((await post([ok], RIGHT)).status).toBe(200);
    const [row] = await stored(ok.pspReference);
    expect(Math.abs(new Date(row.occurred_at!).getTime() - soon.getTime())).toBeLessThan(1000);
  });

  it('an eventDate older than maxEventAgeDays (31) is refused with 400, nothing stored; 30 days old is taken', async () => {
    const old = item({ eventDate: new Date(Date.now() - 32 * 86_400_000) });
    const r = await post([old], RIGHT);
    expect(r.status).toBe(400);
    expect(await stored(old.pspReference)).toEqual([]);
    const month = item({ eventDate: new Date(Date.now() - 30 * 86_400_000) });
    expect((await post([month], RIGHT)).status).toBe(200);
    expect(await stored(month.pspReference)).toHaveLength(1);
  });
});
