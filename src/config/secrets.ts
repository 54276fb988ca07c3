/**
 * Which secrets the hub accepts in its config, and how it makes new ones (issue 13, "no known
 * secret is ever accepted"). A hub whose config holds a missing, placeholder, published or
 * too-short secret refuses to start with a ConfigError naming the key (src/config/load.ts).
 *
 * A secret is refused when it is:
 *  - empty;
 *  - a placeholder (`change-me`, `placeholder`, `dev-only`, `example`, …);
 *  - a value published anywhere — this repository's old example config, its docs, its tests and
 *    simulators, the PSPs' documented test vectors (KNOWN_PUBLISHED_SECRETS; the test
 *    test/reliability/security/published-secrets.test.ts scans the repository so that a new
 *    literal secret there is either refused by these rules or added to the list);
 *  - shorter than its kind requires (SECRET_KINDS), or visibly typed by hand (few distinct
 *    characters, or a run such as `0123456789` / `abcdef`, which random bytes practically never hold).
 * API keys and OAuth client secrets are issued by someone else in a format we do not control, so
 * only the first three rules apply to them.
 */
import crypto from 'node:crypto';
import { z } from 'zod';

export type SecretKind =
  | 'hs256'
  | 'merchantToken'
  | 'stripeWebhook'
  | 'mollieWebhook'
  | 'adyenHmac'
  | 'gocardlessWebhook'
  | 'standardWebhook'
  | 'basicAuthPassword'
  | 'identifierHash'
  | 'apiKey'
  | 'clientSecret';

interface KindRule {
  /** What the kind is, for messages. */
  what: string;
  /** The length/format problem of a value of this kind, if any (placeholders are checked apart). */
  shape(v: string): string | undefined;
  /** Whether the "typed by hand" checks apply (not to API keys and client secrets issued by others). */
  random: boolean;
  /** A new random value of this kind (first start, the demo, tests). */
  generate(): string;
}

const b64url = (bytes: number) => crypto.randomBytes(bytes).toString('base64url');
const atLeastBytes = (min: number, why: string) => (v: string) => {
  const n = Buffer.byteLength(v, 'utf8');
  return n < min ? `must be at least ${min} bytes (${why}); this one is ${n}` : undefined;
};

/** Minimum lengths: see each rule's reason. */
export const MIN_HS256_SECRET_BYTES = 32;
export const MIN_PSP_SECRET_CHARS = 32;
export const MIN_BASIC_AUTH_PASSWORD_CHARS = 24;

export const SECRET_KINDS: Record<SecretKind, KindRule> = {
  hs256: {
    what: 'HS256 secret',
    // RFC 7518 §3.2: a key at least as long as the hash output (256 bits).
    shape: atLeastBytes(MIN_HS256_SECRET_BYTES, 'RFC 7518 §3.2: an HS256 key is at least as long as the hash, 256 bits'),
    random: true,
    generate: () => b64url(32),
  },
  merchantToken: {
    what: 'merchant-token secret',
    shape: atLeastBytes(MIN_HS256_SECRET_BYTES, 'HS256, RFC 7518 §3.2: 32 random bytes, e.g. `openssl rand -base64 32`'),
    random: true,
    generate: () => b64url(32),
  },
  stripeWebhook: {
    what: 'Stripe webhook signing secret',
    // Stripe issues `whsec_` + 32 letters and digits (Dashboard) or 64 hex digits (Stripe CLI).
    shape: (v) =>
      /^whsec_[A-Za-z0-9+/=_-]{32,}$/.test(v) ? undefined : 'must be the whsec_… secret Stripe issued (whsec_ and at least 32 letters and digits)',
    random: true,
    generate: () => `whsec_${b64url(32)}`,
  },
  mollieWebhook: {
    what: 'Mollie webhook signing secret',
    shape: (v) => (v.length < MIN_PSP_SECRET_CHARS ? `must be the signing secret Mollie issued (at least ${MIN_PSP_SECRET_CHARS} characters); this one has ${v.length}` : undefined),
    random: true,
    generate: () => b64url(32),
  },
  adyenHmac: {
    what: 'Adyen HMAC key',
    // The Customer Area generates 32-byte keys shown as 64 hex digits (psp-webhooks reference §3.2).
    shape: (v) =>
      /^(?:[0-9a-fA-F]{2}){32,}$/.test(v) ? undefined : 'must be the HMAC key as the Customer Area shows it: at least 64 hex digits (32 bytes)',
    random: true,
    generate: () => crypto.randomBytes(32).toString('hex').toUpperCase(),
  },
  gocardlessWebhook: {
    what: 'GoCardless webhook endpoint secret',
    shape: (v) => (v.length < MIN_PSP_SECRET_CHARS ? `must be the endpoint secret GoCardless issued (at least ${MIN_PSP_SECRET_CHARS} characters); this one has ${v.length}` : undefined),
    random: true,
    generate: () => b64url(32),
  },
  standardWebhook: {
    what: 'Standard Webhooks signing secret',
    // whsec_ + base64 of 24 to 64 random bytes (the spec's 192-bit minimum; schema.ts says more).
    shape: (v) => {
      const body = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(v)?.[1];
      const bytes = body ? Buffer.from(body, 'base64').length : 0;
      return bytes >= 24 && bytes <= 64 ? undefined : 'must be whsec_ followed by base64 of 24–64 random bytes (whsec_ + `openssl rand -base64 32`)';
    },
    random: true,
    generate: () => `whsec_${crypto.randomBytes(32).toString('base64')}`,
  },
  basicAuthPassword: {
    what: 'HTTP Basic password',
    shape: (v) =>
      v.length < MIN_BASIC_AUTH_PASSWORD_CHARS
        ? `must be at least ${MIN_BASIC_AUTH_PASSWORD_CHARS} characters (e.g. \`openssl rand -base64 24\`); this one has ${v.length}`
        : undefined,
    random: true,
    generate: () => b64url(24),
  },
  identifierHash: {
    what: 'identifier-hash secret',
    // The HMAC-SHA256 key of the screening hashes (src/screening/identifiers.ts): at least as long as the hash.
    shape: atLeastBytes(MIN_HS256_SECRET_BYTES, 'the HMAC-SHA256 key of the screening hashes is at least as long as the hash, 256 bits: `openssl rand -base64 32`'),
    random: true,
    generate: () => b64url(32),
  },
  apiKey: { what: 'API key', shape: () => undefined, random: false, generate: () => b64url(32) },
  clientSecret: { what: 'OAuth2 client secret', shape: () => undefined, random: false, generate: () => b64url(32) },
};

/** Words that mark a value as a stand-in, never a real secret. */
const PLACEHOLDER = /change[-_ .]?me|changeit|placeholder|dev[-_ .]?only|example|replace[-_ .]?me|your[-_ .]?(?:secret|key|token|password)|not[-_ .]?a[-_ .]?secret|^(?:secret|password|test|dummy|x+|\*+)$/i;

/**
 * Values published somewhere a reader of this project can find them: the defaults the example
 * config shipped before issue 13, the PSP and webhook-library test vectors, and literals in this
 * repository's tests and simulators. Compared case-insensitively.
 */
export const KNOWN_PUBLISHED_SECRETS: readonly string[] = [
  // config/hub.example.yaml before issue 13 (its `${NAME:-default}` fallbacks).
  'dev-only-merchant-token-secret-change-me',
  'whsec_dev_acme_change_me',
  'sk_test_dev_placeholder',
  'dev-only-refagency-outbound-secret-change-me',
  'dev-only-refagency-inbound-secret-change-me',
  // Stripe: the self-computed vector of the webhook reference; stripe-node's tests.
  'whsec_test_secret',
  'sk_test_123',
  // Adyen: adyen-node-api-library's hmacValidator.spec.ts key, and the key of this repository's tests.
  'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00',
  '44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056',
  // GoCardless: gocardless-nodejs's webhook test secret.
  'ED7D658C-D8EB-4941-948B-3973214F2D49',
  // Standard Webhooks / Svix: the specification's and the docs' example keys.
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  'whsec_plJ3nmyCDGBKInavdOK15jsl',
  // Mollie's documentation example API key.
  'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM',
  // Literals of this repository's tests that are long and varied enough to pass the other rules
  // (test/reliability/security/published-secrets.test.ts finds them).
  'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsMab',
  'a-shared-secret-of-at-least-32-bytes!!',
  'another-partner-secret-of-32-bytes-or-more',
  'an-agency-secret-the-hub-does-not-have-0123',
  'another-secret-that-is-long-enough-000',
  'not-the-merchant-token-secret-0123',
  'a-32-character-shared-secret-xyz',
  'whsec_5aB9cD3eF7gH1iJ5kL9mN3oP7qR1sT5u',
  'ZFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00',
  'ED7D658C-D8EB-4941-948B-3973214F2D4A',
  '44782DEF547AAA06C910C43932B1EB0C',
];
const KNOWN = new Set(KNOWN_PUBLISHED_SECRETS.map((s) => s.toLowerCase()));

/** A run of `n` characters each one after the other (`0123…`, `abcd…`, `9876…`): typed, not random. */
function hasSequentialRun(v: string, n = 6): boolean {
  let up = 1;
  let down = 1;
  for (let i = 1; i < v.length; i++) {
    const d = v.charCodeAt(i) - v.charCodeAt(i - 1);
    up = d === 1 ? up + 1 : 1;
    down = d === -1 ? down + 1 : 1;
    if (up >= n || down >= n) return true;
  }
  return false;
}

/**
 * Why `value` is not acceptable as a secret of `kind`, or undefined when it is. Pure; the message
 * never repeats the value.
 */
export function secretProblem(value: unknown, kind: SecretKind): string | undefined {
  const rule = SECRET_KINDS[kind];
  if (typeof value !== 'string' || value.trim() === '') return `required: the ${rule.what}`;
  const v = value.trim();
  if (PLACEHOLDER.test(v)) return `is a placeholder, not a ${rule.what}: set a real one`;
  if (KNOWN.has(v.toLowerCase())) return `is a published value (it appears in documentation or source code): generate a new ${rule.what}`;
  const shape = rule.shape(v);
  if (shape) return shape;
  if (rule.random) {
    const body = v.replace(/^whsec_/, '');
    if (new Set(body).size < 10 || hasSequentialRun(body)) {
      return `does not look random (typed by hand?): generate a new ${rule.what}, e.g. \`openssl rand -base64 32\``;
    }
  }
  return undefined;
}

/** One secret inside a connector's config block; a list of values (rotation) has each checked. */
export interface SecretField {
  path: string[];
  kind: SecretKind;
}

/**
 * Where each connector keeps its secrets in its config block. The connector's own schema says
 * whether a field is required; this says what a value must be. Every registered connector has an
 * entry (test/reliability/security/startup-secrets.test.ts checks), so a new one cannot slip by.
 */
export const CONNECTOR_SECRET_FIELDS: Readonly<Record<string, readonly SecretField[]>> = {
  stripe: [
    { path: ['webhookSecret'], kind: 'stripeWebhook' },
    { path: ['apiKey'], kind: 'apiKey' },
  ],
  mollie: [
    { path: ['apiKey'], kind: 'apiKey' },
    { path: ['webhookSigningSecret'], kind: 'mollieWebhook' },
  ],
  adyen: [
    { path: ['hmacKeys'], kind: 'adyenHmac' },
    { path: ['basicAuth', 'password'], kind: 'basicAuthPassword' },
  ],
  gocardless: [
    { path: ['webhookSecret'], kind: 'gocardlessWebhook' },
    { path: ['accessToken'], kind: 'apiKey' },
  ],
  // HS256 only: with RS256/ES256 there is no `secret` (the keys are public or the hub's own).
  reference: [
    { path: ['auth', 'outbound', 'secret'], kind: 'hs256' },
    { path: ['auth', 'inbound', 'secret'], kind: 'hs256' },
    { path: ['auth', 'inbound', 'previousSecrets'], kind: 'hs256' },
  ],
  riverty: [{ path: ['clientSecret'], kind: 'clientSecret' }],
};

/**
 * The first unacceptable secret in a parsed connector block: its path inside the block (with the
 * list index when a field holds several) and why. Absent fields are the connector schema's business.
 */
export function connectorSecretProblem(connector: string, block: unknown): { path: string; problem: string } | undefined {
  for (const field of CONNECTOR_SECRET_FIELDS[connector] ?? []) {
    let node: unknown = block;
    for (const key of field.path) node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    if (node === undefined) continue;
    const values = Array.isArray(node) ? node : [node];
    for (let i = 0; i < values.length; i++) {
      const problem = secretProblem(values[i], field.kind);
      if (problem) return { path: [...field.path, ...(Array.isArray(node) ? [String(i)] : [])].join('.'), problem };
    }
  }
  return undefined;
}

/** A zod string schema that refuses what `secretProblem` refuses (the value is trimmed). */
export function secretSchema(kind: SecretKind) {
  return z
    .string({ error: (iss) => (iss.input === undefined ? `required: the ${SECRET_KINDS[kind].what}` : `must be a string: the ${SECRET_KINDS[kind].what}`) })
    .trim()
    .superRefine((v, ctx) => {
      const problem = secretProblem(v, kind);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
}

/** A new random secret of `kind` (it passes `secretProblem`). */
export function generateSecret(kind: SecretKind): string {
  for (;;) {
    const v = SECRET_KINDS[kind].generate();
    // Random bytes hold a 6-character run or a placeholder word about once in millions of draws.
    if (!secretProblem(v, kind)) return v;
  }
}
