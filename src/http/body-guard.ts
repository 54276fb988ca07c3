/**
 * Cheap checks on a request body before any parser sees it (issue 6, guarantee 6). The body
 * limit bounds the bytes; these bound the shape: JSON.parse takes a 10,000-deep array happily,
 * but JSON.stringify (storing it), zod, PostgreSQL's jsonb parser and the normalizers recurse
 * and would throw a RangeError — a 500 and a crash loop of retries. Real webhooks and pushes
 * nest well under ten levels, so anything past MAX_JSON_DEPTH is refused with a 400.
 */
import { HttpError } from './errors';

/** Deepest `[`/`{` nesting accepted in a body. Stripe's deepest events nest about eight levels. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_SQUARE = 0x5b;
const OPEN_CURLY = 0x7b;
const CLOSE_SQUARE = 0x5d;
const CLOSE_CURLY = 0x7d;

/**
 * The deepest nesting of `[`/`{` outside JSON strings, stopping as soon as it passes `limit`.
 * One pass over the bytes, no allocation; works on any body (a form body simply has depth 0).
 */
export function jsonNestingDepth(body: Buffer, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_SQUARE || c === OPEN_CURLY) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if ((c === CLOSE_SQUARE || c === CLOSE_CURLY) && depth > 0) depth--;
  }
  return max;
}

/** Throws 400 `too_deeply_nested` when the body nests deeper than MAX_JSON_DEPTH. */
export function assertShallow(body: Buffer, max = MAX_JSON_DEPTH): void {
  if (jsonNestingDepth(body, max) > max) {
    throw new HttpError(400, 'too_deeply_nested', `request body nests deeper than ${max} levels`);
  }
}

/** The media type of a Content-Type header, lower-case, without parameters ('' when absent). */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

export const isJson = (type: string) => type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type);
export const isForm = (type: string) => type === 'application/x-www-form-urlencoded';

const UNSTORABLE_SOURCE = '\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
const HAS_UNSTORABLE = new RegExp(UNSTORABLE_SOURCE);
const UNSTORABLE = new RegExp(UNSTORABLE_SOURCE, 'g');

/**
 * A parsed payload as PostgreSQL can store it. JSON allows `\u0000` and lone surrogates in
 * strings; `jsonb` and `text` refuse them, which would make a validly signed event a 500 that the
 * PSP retries until it gives up — the event lost. They become U+FFFD (the replacement character),
 * in values and keys; everything else is kept as received. Depth is bounded by assertShallow.
 */
export function storable<T>(value: T): T {
  if (typeof value === 'string') return (HAS_UNSTORABLE.test(value) ? value.replace(UNSTORABLE, '\uFFFD') : value) as T;
  if (Array.isArray(value)) return value.map((v) => storable(v)) as T;
  if (value && typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    // defineProperty, so a `__proto__` key stays a key (JSON.parse makes it an own property).
    for (const [k, v] of Object.entries(value)) Object.defineProperty(out, storable(k), { value: storable(v), enumerable: true, writable: true, configurable: true });
    return out as T;
  }
  return value;
}

/**
 * JSON.stringify writes NUL as `\u0000` and a lone surrogate as `\udXXX` (well-formed JSON.stringify);
 * a valid surrogate pair is written as the character itself. So text without either escape holds
 * nothing storable() would change. (A literal backslash before `u0000` also matches: harmless,
 * storable then simply changes nothing.)
 */
const UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f])/i;

/**
 * `JSON.stringify(storable(value))`, without rebuilding the value when nothing in it needs it —
 * the common case, and the webhook path's hot one: the text is needed for the jsonb column anyway.
 */
export function storableJson(value: unknown): string {
  const text = JSON.stringify(value);
  return typeof text === 'string' && UNSTORABLE_ESCAPE.test(text) ? JSON.stringify(storable(value)) : text;
}
