/**
 * The identifiers screening works with (issue 17, requirement 3): the e-mail, the merchant's own
 * customer id (`merchant_ref`, src/ledger/debtor-key.ts), an IBAN and a card fingerprint. They are
 * stored and matched only as salted hashes — never in plain — so a lookup table of them is useless
 * without the hub's secret, and one merchant's hash of an address never equals another's.
 *
 *   hash = HMAC-SHA256(key = hub.identifierHashSecret,
 *                      "collection-hub identifier v1" ‖ merchantId ‖ kind ‖ normalised value)
 *
 * each part length-prefixed, so no two different inputs run together into the same bytes. The
 * merchant id in the input means the same e-mail hashes differently for every merchant: the hashes
 * cannot be compared across merchants, by the hub or by whoever reads its database.
 *
 * Normalisation, the same on the way in (PSP events) and on the way out (a screening request):
 *  - email: trimmed, lower-case (normaliseEmail: `+tags` and dots kept, they may be another mailbox);
 *  - merchant_ref: trimmed (as the debtor key reads it), case kept;
 *  - iban: every space removed, upper-case, and it must be an IBAN (country, length, mod-97 check);
 *  - card_fingerprint: trimmed, case kept (a PSP's fingerprint is case-sensitive).
 * Pure: no database, no clock, no environment.
 */
import crypto from 'node:crypto';
import type { PaymentEvent } from '../domain/types';
import { normaliseEmail } from '../ledger/debtor-key';
import { ibanValid } from '../observability/redact';

export const IDENTIFIER_KINDS = ['email', 'merchant_ref', 'iban', 'card_fingerprint'] as const;
export type IdentifierKind = (typeof IDENTIFIER_KINDS)[number];

/** One identifier, normalised. */
export interface Identifier {
  kind: IdentifierKind;
  value: string;
}

/** Longest value accepted for any kind (an e-mail is at most 254 characters, an IBAN 34). */
export const MAX_IDENTIFIER_LENGTH = 256;
const CONTROL = /[\u0000-\u001f\u007f]/;
const IBAN_SHAPE = /^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/;

/** Spaces out, upper-case: `nl91 abna 0417 1643 00` → `NL91ABNA0417164300`. */
export function normaliseIban(raw: string | null | undefined): string | null {
  const v = (raw ?? '').replace(/\s+/g, '').toUpperCase();
  return IBAN_SHAPE.test(v) && ibanValid(v) ? v : null;
}

/** The normalised value of `raw` as an identifier of `kind`, or null when it is not one. */
export function normaliseIdentifier(kind: IdentifierKind, raw: string | null | undefined): string | null {
  // Whitespace around the value (a newline pasted along) is trimmed; a control character inside it is refused.
  if (typeof raw !== 'string' || raw.length > MAX_IDENTIFIER_LENGTH || CONTROL.test(raw.trim())) return null;
  switch (kind) {
    case 'email':
      return normaliseEmail(raw);
    case 'iban':
      return normaliseIban(raw);
    case 'merchant_ref':
    case 'card_fingerprint': {
      const v = raw.trim();
      return v ? v : null;
    }
  }
}

/** Why `raw` is not an identifier of `kind` (for a 400), or undefined when it is one. Never repeats the value. */
export function identifierProblem(kind: IdentifierKind, raw: string): string | undefined {
  if (raw.length > MAX_IDENTIFIER_LENGTH) return `is longer than ${MAX_IDENTIFIER_LENGTH} characters`;
  if (CONTROL.test(raw.trim())) return 'contains control characters';
  if (normaliseIdentifier(kind, raw) !== null) return undefined;
  switch (kind) {
    case 'email':
      return 'is not an e-mail address (one @ with text on either side, no spaces)';
    case 'iban':
      return 'is not a valid IBAN (country code, length and check digits are checked; spaces are ignored)';
    default:
      return 'must not be empty';
  }
}

export interface IdentifierHasher {
  /** The hex HMAC of a normalised identifier of this merchant. */
  hash(merchantId: string, id: Identifier): string;
}

const DOMAIN = 'collection-hub identifier v1';

/** Each part as `<byte length>:<bytes>`: no two different part lists encode alike. */
function encode(parts: string[]): string {
  return parts.map((p) => `${Buffer.byteLength(p, 'utf8')}:${p}`).join('');
}

/** The hasher for the hub's secret (hub.identifierHashSecret, checked at start-up by src/config/secrets.ts). */
export function createIdentifierHasher(secret: string): IdentifierHasher {
  if (typeof secret !== 'string' || Buffer.byteLength(secret, 'utf8') < 32) {
    throw new Error('the identifier-hash secret must be at least 32 bytes (hub.identifierHashSecret)');
  }
  const key = Buffer.from(secret, 'utf8');
  return {
    hash: (merchantId, id) => crypto.createHmac('sha256', key).update(encode([DOMAIN, merchantId, id.kind, id.value])).digest('hex'),
  };
}

/** The identifiers a PSP event teaches about its customer, normalised, each kind and value once. */
export function identifiersOf(ev: Pick<PaymentEvent, 'customer' | 'payment'>): Identifier[] {
  const out: Identifier[] = [];
  const add = (kind: IdentifierKind, raw: string | null | undefined) => {
    const value = normaliseIdentifier(kind, raw);
    if (value !== null && !out.some((x) => x.kind === kind && x.value === value)) out.push({ kind, value });
  };
  if (!ev.customer?.ref) return out;
  add('email', ev.customer.email);
  add('merchant_ref', ev.customer.merchantRef);
  add('iban', ev.payment?.iban);
  add('card_fingerprint', ev.payment?.cardFingerprint);
  return out;
}

/**
 * A masked form for the sync log and the answer (never the identifier itself): enough to tell two
 * screenings apart, not to read the address or account back.
 *   jan.jansen@example.nl → j•••@e•••.nl · NL91ABNA0417164300 → NL91•••4300 · Xt5EWLLDS7FJjR1c → Xt•••
 */
export function maskIdentifier(id: Identifier): string {
  const dots = '•••';
  switch (id.kind) {
    case 'email': {
      const [local, domain] = id.value.split('@');
      const tld = domain.includes('.') ? domain.slice(domain.lastIndexOf('.')) : '';
      return `${local[0]}${dots}@${domain[0]}${dots}${tld}`;
    }
    case 'iban':
      return `${id.value.slice(0, 4)}${dots}${id.value.slice(-4)}`;
    default:
      return `${id.value.slice(0, 2)}${dots}`;
  }
}
