/**
 * Masks secrets and card/bank data before anything reaches a log line, the sync log or a
 * job (design.md habit 8). Keys are matched by name; free text by pattern (card numbers, IBANs,
 * bearer tokens, Stripe secrets and signatures).
 */

/**
 * Key names whose values are masked whole: anything that names a secret, token, key, signature or
 * credential (so `accessToken`, `hmacKeys`, `webhookSigningSecret`, `x-api-key`, `basicAuth` are
 * covered as well as the exact names), and card/bank fields.
 */
const SECRET_KEYS =
  /(secret|passw(or)?d|token|api[-_]?key|authorization|signature|hmac|private[-_]?key|cookie|credential|basic[-_]?auth)|^(iban|card[-_]?number|pan|cvc|cvc2|cvv|cvv2|security[-_]?code)$/i;

const PATTERNS: [RegExp, string][] = [
  [/\bBearer\s+[A-Za-z0-9._~+/=-]+/g, 'Bearer [redacted]'],
  [/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[jwt redacted]'],
  [/\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+/g, '[key redacted]'],
  [/\bwhsec_[A-Za-z0-9_+/=]+/g, '[secret redacted]'],
  [/\b(?:live|test|sandbox)_[A-Za-z0-9_-]{20,}/g, '[key redacted]'],
  // Every signature of a Stripe-Signature header (several v1 during secret rotation, a v0 in test mode).
  [/\bt=\d+(?:,\s*v\d+=[0-9a-f]+)+/g, '[signature redacted]'],
];

/**
 * IBANs: a country that issues them, two check digits, 11–30 alphanumerics (spaces allowed in
 * groups of four), and a valid ISO 13616 mod-97 checksum — so ids that merely look alike
 * (GoCardless `EV0123AB…`, `PM00…`) stay readable in logs and the sync log.
 */
const IBAN_CANDIDATE = /\b([A-Z]{2})\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?\b/g;
const IBAN_COUNTRIES = new Set(
  ('AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE').split(' '),
);

export function ibanValid(candidate: string): boolean {
  const iban = candidate.replace(/\s/g, '');
  if (iban.length < 15 || iban.length > 34 || !IBAN_COUNTRIES.has(iban.slice(0, 2))) return false;
  const moved = iban.slice(4) + iban.slice(0, 4);
  let rest = 0;
  for (const ch of moved) {
    const v = ch >= 'A' && ch <= 'Z' ? String(ch.charCodeAt(0) - 55) : ch;
    for (const d of v) rest = (rest * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return rest === 1;
}

function maskIbans(text: string): string {
  return text.replace(IBAN_CANDIDATE, (m) => (ibanValid(m) ? '[iban redacted]' : m));
}

/**
 * Card numbers: 13–19 digits, optionally grouped by spaces or dashes, not part of a longer run of
 * digits but possibly glued to letters (`card4242424242424242`), and passing the Luhn check —
 * which every issued PAN does and nine in ten other long numbers (Adyen PSP references,
 * millisecond timestamps) do not, so those stay readable in logs and the sync log.
 */
const PAN_CANDIDATE = /(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])/g;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function maskPans(text: string): string {
  return text.replace(PAN_CANDIDATE, (m) => (luhnValid(m.replace(/[ -]/g, '')) ? '[pan redacted]' : m));
}

/**
 * The shortest text any pattern above masks: a JWT's `eyJx.y.` and a webhook secret's `whsec_x`
 * are 7 characters (a Bearer token 8, a Stripe signature 8, a key 9, a PAN 13, an IBAN 15).
 */
export const MIN_REDACTABLE_LENGTH = 7;

/**
 * What every pattern above needs somewhere in the text (each alternative is a prefix or a literal
 * part of one pattern, case-sensitive like the patterns): a text without any of them has nothing
 * to mask, and one test of this replaces the eight scans below — most log fields and sync-log
 * strings (ids, statuses, amounts, dates) are like that.
 */
const MAY_HOLD_SECRET = /Bearer|eyJ|live_|test_|sandbox_|whsec_|t=\d|[A-Z]{2}\d{2}|\d(?:[ -]?\d){12}/;

/** Every pattern, with no shortcut (the fast path's tests compare against it). */
export function redactTextFully(text: string): string {
  let out = text;
  for (const [re, rep] of PATTERNS) out = out.replace(re, rep);
  return maskPans(maskIbans(out));
}

export function redactText(text: string): string {
  if (text.length < MIN_REDACTABLE_LENGTH || !MAY_HOLD_SECRET.test(text)) return text;
  return redactTextFully(text);
}

/** A JSON number that is a card number (13–19 digits, Luhn-valid): payloads are not always strings. */
function isPanNumber(n: number): boolean {
  if (!Number.isInteger(n) || n < 1e12) return false;
  const digits = n.toFixed(0);
  return digits.length >= 13 && digits.length <= 19 && luhnValid(digits);
}

/** Deep copy with secret keys masked and secret-looking strings replaced. */
export function redact<T>(value: T, depth = 0): T {
  if (depth > 12) return '[too deep]' as unknown as T;
  if (typeof value === 'string') return redactText(value) as unknown as T;
  if (typeof value === 'number' && isPanNumber(value)) return '[pan redacted]' as unknown as T;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1)) as unknown as T;
  if (value && typeof value === 'object') {
    if (Buffer.isBuffer(value)) return `[${value.length} bytes]` as unknown as T;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SECRET_KEYS.test(k) && v != null && v !== '' ? '[redacted]' : redact(v, depth + 1);
    }
    return out as T;
  }
  return value;
}
