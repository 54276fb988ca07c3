/**
 * Verifies a push from the agency (`POST /v1/partners/:partnerId/events`, contract §5): first the
 * bearer JWT, then the body. Only the one algorithm configured for the partner is accepted, so
 * `alg: none` and HS/RS key confusion are refused by construction; `exp` is required.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { AgencyUpdate } from '../../../src/domain/types';
import type { AgencyMapping } from '../../../src/mappings/types';
import { PushRejection } from '../types';
import { UnmappedValueError, normalizeUpdate } from './normalize';
import { describeIssues, pushBodySchema, type ReferenceInboundAuth } from './schema';

/** Agency clocks drift; a minute either way is tolerated on exp/nbf/iat. */
export const PUSH_CLOCK_TOLERANCE_SECONDS = 60;
/** Contract §5 bounds the hub's own tokens to 5 minutes; a partner's push token gets the same cap by default. */
export const DEFAULT_PUSH_TOKEN_MAX_LIFETIME_SECONDS = 300;

/** The claims the route needs to refuse a replay: the token's id and when it stops being valid. */
export interface PushTokenId {
  jti: string;
  expiresAt: Date;
}

export interface PushVerifier {
  (headers: Record<string, string | undefined>, body: unknown, onToken?: (t: PushTokenId) => void): AgencyUpdate[];
}

export interface PushVerifierOptions {
  partnerId: string;
  hubId: string;
  inbound: ReferenceInboundAuth;
  mapping: AgencyMapping;
}

function header(headers: Record<string, string | undefined>, name: string): string | undefined {
  // Node lower-cases header names, but a caller may pass them as written.
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/** A token checked against each key in turn (the current one first, then those kept during a rotation). */
function verifyWithKeys(token: string, keys: crypto.KeyObject[], opts: PushVerifierOptions): string | jwt.JwtPayload {
  let last: unknown;
  for (const key of keys) {
    try {
      return jwt.verify(token, key, { algorithms: [opts.inbound.alg], issuer: opts.partnerId, audience: opts.hubId, clockTolerance: PUSH_CLOCK_TOLERANCE_SECONDS });
    } catch (err) {
      last = err;
      // Only a signature that does not match this key is worth trying the next key for.
      if (!(err instanceof jwt.JsonWebTokenError) || err instanceof jwt.TokenExpiredError || err instanceof jwt.NotBeforeError || err.message !== 'invalid signature') throw err;
    }
  }
  throw last;
}

function verifyToken(
  headers: Record<string, string | undefined>,
  opts: PushVerifierOptions,
  keys: crypto.KeyObject[],
): PushTokenId {
  const authorization = header(headers, 'authorization');
  if (!authorization) throw new PushRejection(401, 'missing Authorization header');
  const match = /^Bearer[ ]+([A-Za-z0-9_\-.]+)\s*$/i.exec(authorization);
  if (!match) throw new PushRejection(401, 'Authorization must be "Bearer <JWT>"');

  let payload: string | jwt.JwtPayload;
  try {
    payload = verifyWithKeys(match[1], keys, opts);
  } catch (err) {
    // jsonwebtoken's messages name the failed check (expired, issuer, audience…) and never the token.
    if (err instanceof jwt.TokenExpiredError) throw new PushRejection(401, 'token expired');
    if (err instanceof jwt.NotBeforeError) throw new PushRejection(401, 'token not yet valid (nbf)');
    const reason = (err as Error).message;
    throw new PushRejection(401, reason.startsWith('invalid token') ? reason : `invalid token: ${reason}`);
  }
  // jsonwebtoken accepts tokens without exp; the contract does not.
  if (typeof payload !== 'object' || typeof payload.exp !== 'number') {
    throw new PushRejection(401, 'invalid token: exp is required');
  }
  // Issue 13, item 4: a bounded lifetime and a one-time id, so a captured token cannot be replayed.
  if (typeof payload.iat !== 'number') throw new PushRejection(401, 'invalid token: iat is required');
  const max = opts.inbound.maxTokenLifetimeSeconds ?? DEFAULT_PUSH_TOKEN_MAX_LIFETIME_SECONDS;
  if (payload.exp - payload.iat > max) throw new PushRejection(401, `invalid token: lifetime (exp - iat) exceeds ${max} s`);
  if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 200) {
    throw new PushRejection(401, 'invalid token: jti is required (a unique id per token, 8-200 characters)');
  }
  return { jti: payload.jti, expiresAt: new Date((payload.exp + PUSH_CLOCK_TOLERANCE_SECONDS) * 1000) };
}

function parseBody(body: unknown): unknown {
  // Routes may hand over the raw bytes (they are read raw for verification elsewhere).
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    try {
      return JSON.parse(body.toString());
    } catch {
      throw new PushRejection(400, 'body is not valid JSON');
    }
  }
  return body;
}

/** Build the verifier once per partner, so the agency's key is parsed once, not per request. */
export function createPushVerifier(opts: PushVerifierOptions): PushVerifier {
  // A KeyObject for HS256 too: given a string, jsonwebtoken first tries it as a PEM public key
  // (createPublicKey, which throws) and then builds a secret key, on every push.
  // During a rotation the previous keys are accepted too, until they are removed from the config.
  const keys: crypto.KeyObject[] =
    opts.inbound.alg === 'HS256'
      ? [opts.inbound.secret, ...(opts.inbound.previousSecrets ?? [])].map((s) => crypto.createSecretKey(Buffer.from(s, 'utf8')))
      : [opts.inbound.publicKey, ...(opts.inbound.previousPublicKeys ?? [])].map((pem) => crypto.createPublicKey(pem));

  return (headers, body, onToken) => {
    const token = verifyToken(headers, opts, keys);
    onToken?.(token);

    const parsed = pushBodySchema.safeParse(parseBody(body));
    if (!parsed.success) throw new PushRejection(400, `invalid body: ${describeIssues(parsed.error)}`);

    return parsed.data.events.map((event, i) => {
      try {
        return normalizeUpdate(event, opts.mapping);
      } catch (err) {
        if (err instanceof UnmappedValueError) {
          // Refused rather than stored half-understood; the agency keeps it and retries after the mapping is fixed.
          throw new PushRejection(400, `invalid body: events[${i}].${err.field}: "${err.value}" is not a known ${err.field}`);
        }
        throw err;
      }
    });
  };
}

/** One-shot form of createPushVerifier. */
export function verifyPush(
  opts: PushVerifierOptions,
  headers: Record<string, string | undefined>,
  body: unknown,
): AgencyUpdate[] {
  return createPushVerifier(opts)(headers, body);
}
