/**
 * Adyen Standard notification verification: optional HTTP Basic auth, then the HMAC signature of
 * every NotificationRequestItem, then (when configured) the merchant account — and only then the
 * items become raw events, one per item, answered `[accepted]`.
 *
 * The HMAC is implemented here with node:crypto, exactly as the official Node library does it
 * (`Adyen/adyen-node-api-library:src/utils/hmacValidator.ts`, shared/reference/psp-webhooks.md §3.2),
 * because no Adyen SDK is a dependency of the hub:
 *  - signing string: `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`,
 *    values joined with `:` as they are, no escaping (the library escapes only in its generic
 *    key/value path, not for notifications), a missing value (no `originalReference` on an
 *    AUTHORISATION) joining as the empty string (`Array.prototype.join` semantics, as there);
 *  - key: the Customer Area HMAC key hex-decoded to bytes (`Buffer.from(key, "hex")`);
 *  - HMAC-SHA256 over the UTF-8 signing string, base64 (`digest("base64")`);
 *  - compared with `additionalData.hmacSignature`: unequal lengths fail, otherwise `timingSafeEqual`
 *    over the base64-decoded bytes; a missing signature is `Missing hmacSignature`.
 * On top of the library: several configured keys (rotation) — an item passes if any key matches.
 *
 * Adyen signs parsed fields, not bytes (§7.1), so JSON-parsing before verifying is safe here.
 *
 * The HMAC covers eight fields only; `additionalData.shopperReference` and `shopperEmail` (whose
 * debt it is), `reason` and `eventDate` are not signed. So HTTP Basic auth is required by the
 * schema (issue 13): a delivery without the webhook's password is refused before any field is read,
 * and `eventDate` is bounded by the delivery's arrival (`boundEventDate`).
 *
 * Refusals (WebhookRejection; the ingress stores nothing and answers the status):
 *  - 401 Basic auth missing/wrong;
 *  - 400 an item whose eventDate is more than `maxEventAgeDays` before arrival;
 *  - 400 not JSON / not a Standard notification (Adyen cannot fix the bytes by retrying, but a
 *    non-2xx keeps the delivery visible as failing in the Customer Area);
 *  - 401 any item without a valid signature: the WHOLE delivery is refused, nothing is stored. A
 *    JSON Standard webhook carries one item (§3.1), so this loses nothing in practice; with several,
 *    storing the good ones and answering 2xx would tell Adyen the bad one was delivered, and storing
 *    them and answering 401 would only make Adyen resend all of them — one verdict per delivery is
 *    the honest answer (Adyen retries it, §3.3, and an operator sees it failing);
 *  - 401 an item for another merchant account than the configured `merchantAccount`. Refused rather
 *    than stored as `ignored`: its HMAC is valid, so it comes from Adyen, but it belongs to no tenant
 *    of this URL — storing it would put another account's shopper data into this merchant's records,
 *    and acknowledging it would hide a misrouted webhook. The rejection is in the sync log (with the
 *    account named) and Adyen shows the webhook as failing.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookRejection, type InboundRequest, type RawInboundEvent, type VerifiedDelivery } from '../types';
import { ADYEN_EVENT_DATE_DEFAULTS, adyenNotificationSchema, type AdyenProviderConfig } from './schema';

/** Adyen's legacy acknowledgement, still accepted by every Adyen endpoint setting (§3.3). */
export const ADYEN_ACK = { status: 200, body: '[accepted]', contentType: 'text/plain' } as const;

/** The fields the signature covers, as the reference reads them from a NotificationRequestItem. */
export interface SignedFields {
  pspReference?: unknown;
  originalReference?: unknown;
  merchantAccountCode?: unknown;
  merchantReference?: unknown;
  amount?: { value?: unknown; currency?: unknown } | null;
  eventCode?: unknown;
  success?: unknown;
  additionalData?: Record<string, unknown> | null;
}

export function configuredHmacKeys(config: Pick<AdyenProviderConfig, 'hmacKeys'>): string[] {
  return Array.isArray(config.hmacKeys) ? config.hmacKeys : [config.hmacKeys];
}

/**
 * The signing string of one item, exactly as the reference's getDataToSign builds it (a missing
 * field is empty). A signed field that is an object or an array is refused: Adyen sends strings,
 * numbers and booleans there, and joining an object may even throw (a `toString` that is not a
 * function: found by the parser fuzz test).
 */
export function adyenSigningString(item: SignedFields): string {
  const fields: [string, unknown][] = [
    ['pspReference', item.pspReference],
    ['originalReference', item.originalReference],
    ['merchantAccountCode', item.merchantAccountCode],
    ['merchantReference', item.merchantReference],
    ['amount.value', item.amount?.value],
    ['amount.currency', item.amount?.currency],
    ['eventCode', item.eventCode],
    ['success', item.success],
  ];
  return fields
    .map(([name, v]) => {
      if (v === undefined || v === null) return '';
      if (typeof v === 'object' || typeof v === 'function' || typeof v === 'symbol') {
        throw new WebhookRejection(400, `notification item field ${name} is not a string, number or boolean`);
      }
      return String(v);
    })
    .join(':');
}

/** Base64 HMAC-SHA256 of a signing string with a hex key (the reference's calculateHmac). */
export function adyenHmac(data: string, hexKey: string): string {
  return createHmac('sha256', Buffer.from(hexKey, 'hex')).update(data, 'utf8').digest('base64');
}

/**
 * Whether `additionalData.hmacSignature` matches with any of the keys. Throws the reference's
 * `Missing hmacSignature` (as a 401) when the item carries none.
 */
export function isValidAdyenSignature(item: SignedFields, keys: readonly string[]): boolean {
  const given = item.additionalData?.hmacSignature;
  if (typeof given !== 'string' || given.length === 0) throw new WebhookRejection(401, 'Missing hmacSignature');
  const data = adyenSigningString(item);
  const givenBytes = Buffer.from(given, 'base64');
  let ok = false;
  for (const key of keys) {
    const expected = adyenHmac(data, key);
    const expectedBytes = Buffer.from(expected, 'base64');
    // Length first, then a constant-time compare of the decoded bytes — as the reference does. The
    // decoded lengths are checked too: a 44-character string that is not padded base64 decodes to
    // 33 bytes, on which the reference's timingSafeEqual throws a RangeError; here it is a mismatch.
    // Every key is tried (no early exit) so the time taken does not tell which key matched.
    if (given.length === expected.length && givenBytes.length === expectedBytes.length && timingSafeEqual(expectedBytes, givenBytes)) ok = true;
  }
  return ok;
}

/**
 * HTTP Basic auth, when configured. Both user name and password are compared in constant time
 * (over SHA-256 digests, so differing lengths take the same path) and both always, so the answer
 * time does not tell which one was wrong.
 */
export function checkBasicAuth(authorization: string | undefined, expected: NonNullable<AdyenProviderConfig['basicAuth']>): void {
  const m = authorization ? /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(authorization) : null;
  if (!m) throw new WebhookRejection(401, 'missing HTTP Basic credentials');
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const username = colon < 0 ? decoded : decoded.slice(0, colon);
  const password = colon < 0 ? '' : decoded.slice(colon + 1);
  const sameUser = constantTimeEqual(username, expected.username);
  const samePassword = constantTimeEqual(password, expected.password);
  if (!(sameUser && samePassword)) throw new WebhookRejection(401, 'wrong HTTP Basic credentials');
}

function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/** The dedup key of one item (psp-webhooks.md §7.4): the same change re-sent by Adyen has the same key. */
export function adyenEventId(item: { pspReference: string; eventCode: string; success: string }): string {
  return `${item.pspReference}:${item.eventCode}:${item.success}`;
}

/**
 * When an item happened, judged by when it arrived (`eventDate` is not signed): later than arrival
 * + `maxClockSkewSeconds` is clamped to the arrival time (an unsigned date must not push a
 * first-failure date, and so a hand-over, around); more than `maxEventAgeDays` before arrival is
 * refused. An eventDate that is not a date is left to the normalizer (which dead-letters it).
 */
export function boundEventDate(
  eventDate: string,
  receivedAt: Date,
  bounds: Pick<AdyenProviderConfig, 'maxClockSkewSeconds' | 'maxEventAgeDays'>,
): { occurredAt?: string; refused?: string } {
  const at = Date.parse(eventDate);
  if (Number.isNaN(at)) return {};
  const now = receivedAt.getTime();
  const skew = bounds.maxClockSkewSeconds ?? ADYEN_EVENT_DATE_DEFAULTS.maxClockSkewSeconds;
  const maxAgeDays = bounds.maxEventAgeDays ?? ADYEN_EVENT_DATE_DEFAULTS.maxEventAgeDays;
  if (at > now + skew * 1000) return { occurredAt: receivedAt.toISOString() };
  if (at < now - maxAgeDays * 86_400_000) {
    return { refused: `eventDate ${eventDate} is more than ${maxAgeDays} days before the delivery (Adyen retries for 30 days at most)` };
  }
  return { occurredAt: new Date(at).toISOString() };
}

export function verifyAdyenWebhook(req: InboundRequest, config: AdyenProviderConfig, now: Date): VerifiedDelivery {
  // Before anything is parsed: the unsigned fields are trusted only from a sender that knows the
  // webhook's password. Replays of a stored item are harmless: each is deduplicated on its event id.
  checkBasicAuth(req.headers.authorization, config.basicAuth);

  let body: unknown;
  try {
    body = JSON.parse(req.rawBody.toString('utf8'));
  } catch {
    // Adyen can also post form fields ("HTTP POST" format); this endpoint takes the JSON format only.
    throw new WebhookRejection(400, 'Adyen notification body is not JSON (configure the webhook with the JSON format)');
  }
  const parsed = adyenNotificationSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WebhookRejection(400, `not an Adyen Standard notification: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }

  // The signature is computed over the items as they arrived (before any zod transform).
  const rawItems = (body as { notificationItems: { NotificationRequestItem: SignedFields }[] }).notificationItems;
  const keys = configuredHmacKeys(config);
  rawItems.forEach((entry, i) => {
    if (!isValidAdyenSignature(entry.NotificationRequestItem, keys)) {
      throw new WebhookRejection(401, `HMAC signature of notification item ${i} does not match (the whole delivery is refused)`);
    }
  });

  const { live, notificationItems } = parsed.data;
  const events: RawInboundEvent[] = notificationItems.map(({ NotificationRequestItem: item }, i) => {
    if (config.merchantAccount && item.merchantAccountCode !== config.merchantAccount) {
      throw new WebhookRejection(
        401,
        `notification item ${i} is for merchant account ${item.merchantAccountCode}, this webhook is configured for ${config.merchantAccount}`,
      );
    }
    const when = boundEventDate(item.eventDate, now, config);
    if (when.refused) throw new WebhookRejection(400, `notification item ${i}: ${when.refused}`);
    return {
      providerEventId: adyenEventId(item),
      eventType: item.eventCode,
      // The bounded time; normalize.ts takes it over the raw eventDate.
      occurredAt: when.occurredAt,
      // One stored event per item, with the delivery's `live` flag beside it.
      payload: { live, NotificationRequestItem: rawItems[i].NotificationRequestItem },
    };
  });
  return { events, ack: { ...ADYEN_ACK } };
}
