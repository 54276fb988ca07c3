/**
 * Merchant tokens (contract §6): HS256 JWTs issued by the hub, `sub` = merchant id,
 * `aud` = hub id, `iss` = hub id (the hub issues them), `exp` and `iat` required, `nbf` honoured.
 * Only HS256 is accepted, so `alg: none` and key confusion (an RS256 token, or an HS256 token keyed
 * with the hub's public JWKS key) fail. No clock tolerance: the hub issues and checks them itself.
 *
 * Rotation, lifetime and revocation (issue 13, item 4):
 *  - every token names its key in the header (`kid`: a fingerprint of the secret, so no key id has
 *    to be configured); `auth.merchantTokenSecret` signs, and the secrets listed in
 *    `auth.merchantTokenPreviousSecrets` are still accepted until they are removed. A token without
 *    a `kid` is checked against the current secret only;
 *  - a token whose `exp - iat` exceeds `auth.merchantTokenMaxLifetimeSeconds` is refused whatever
 *    it says, so a leaked long-lived token cannot be minted even with the key;
 *  - `merchants[].tokensIssuedAfter` revokes every token of that merchant issued before it (its
 *    `iat`), without touching the other merchants' tokens or the key.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { RequestHandler } from 'express';
import { HttpError } from './errors';

/** Default cap on a merchant token's lifetime (exp - iat), checked at verification. */
export const DEFAULT_MERCHANT_TOKEN_MAX_LIFETIME_SECONDS = 7 * 24 * 3600;
/** An `iat` this far in the future is refused (the hub issues tokens with its own clock). */
const IAT_FUTURE_SLACK_SECONDS = 60;

export interface MerchantAuthOptions {
  hubId: string;
  /** The current signing secret. */
  secret: string;
  /** Earlier secrets still accepted during a rotation. */
  previousSecrets?: string[];
  merchantIds: Set<string>;
  /** Cap on exp - iat; default DEFAULT_MERCHANT_TOKEN_MAX_LIFETIME_SECONDS. */
  maxLifetimeSeconds?: number;
  /** Per merchant: tokens issued (iat) before this are revoked. */
  issuedAfter?: Map<string, Date>;
}

/** The key id of a merchant-token secret: a short fingerprint, safe to show (it cannot be reversed into the secret). */
export function merchantTokenKid(secret: string): string {
  return crypto.createHash('sha256').update('collection-hub merchant token key\0').update(secret).digest('base64url').slice(0, 16);
}

/** The options every merchant-authenticated router uses, from the hub's config. */
export function merchantAuthOptions(ctx: {
  config: { hub: { id: string }; auth: { merchantTokenSecret: string; merchantTokenPreviousSecrets?: string[]; merchantTokenMaxLifetimeSeconds?: number } };
  merchants: Map<string, { tokensIssuedAfter?: string | Date }>;
}): MerchantAuthOptions {
  const issuedAfter = new Map<string, Date>();
  for (const [id, m] of ctx.merchants) if (m.tokensIssuedAfter) issuedAfter.set(id, new Date(m.tokensIssuedAfter));
  return {
    hubId: ctx.config.hub.id,
    secret: ctx.config.auth.merchantTokenSecret,
    previousSecrets: ctx.config.auth.merchantTokenPreviousSecrets ?? [],
    merchantIds: new Set(ctx.merchants.keys()),
    maxLifetimeSeconds: ctx.config.auth.merchantTokenMaxLifetimeSeconds,
    issuedAfter,
  };
}

export function issueMerchantToken(opts: { hubId: string; secret: string; merchantId: string; ttlSeconds: number }): string {
  return jwt.sign({}, opts.secret, {
    algorithm: 'HS256', subject: opts.merchantId, audience: opts.hubId, issuer: opts.hubId, expiresIn: opts.ttlSeconds, keyid: merchantTokenKid(opts.secret),
  });
}

const refuse = (why: string) => new HttpError(401, 'unauthorized', `invalid token: ${why}`);

/** The secret a token's `kid` names (current or previous), or the current one when it names none. */
function keyFor(token: string, opts: MerchantAuthOptions): string {
  const decoded = jwt.decode(token, { complete: true });
  const kid = decoded && typeof decoded === 'object' ? decoded.header.kid : undefined;
  if (kid === undefined) return opts.secret;
  const match = [opts.secret, ...(opts.previousSecrets ?? [])].find((s) => merchantTokenKid(s) === kid);
  if (!match) throw refuse('unknown key id (kid): the key was rotated out, or the token is not ours');
  return match;
}

export function verifyMerchantToken(header: string | undefined, opts: MerchantAuthOptions): string {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) throw new HttpError(401, 'unauthorized', 'missing bearer token (Authorization: Bearer <merchant token>)');
  let payload: jwt.JwtPayload;
  try {
    payload = jwt.verify(m[1], keyFor(m[1], opts), { algorithms: ['HS256'], audience: opts.hubId, issuer: opts.hubId }) as jwt.JwtPayload;
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // jsonwebtoken's messages name the failed check (expired, nbf, audience, issuer…), never the token.
    if (err instanceof jwt.TokenExpiredError) throw refuse('expired');
    if (err instanceof jwt.NotBeforeError) throw refuse('not yet valid (nbf)');
    const reason = (err as Error).message;
    throw new HttpError(401, 'unauthorized', reason.startsWith('invalid token') ? reason : `invalid token: ${reason}`);
  }
  if (typeof payload !== 'object' || payload === null) throw refuse('the payload is not a claims object');
  if (typeof payload.exp !== 'number') throw refuse('exp is required');
  if (typeof payload.iat !== 'number') throw refuse('iat is required');
  const max = opts.maxLifetimeSeconds ?? DEFAULT_MERCHANT_TOKEN_MAX_LIFETIME_SECONDS;
  if (payload.exp - payload.iat > max) throw refuse(`lifetime (exp - iat) exceeds the maximum of ${max} s`);
  if (payload.iat > Date.now() / 1000 + IAT_FUTURE_SLACK_SECONDS) throw refuse('issued in the future (iat)');
  if (typeof payload.sub !== 'string' || !opts.merchantIds.has(payload.sub)) throw refuse('unknown merchant');
  const floor = opts.issuedAfter?.get(payload.sub);
  if (floor && payload.iat * 1000 < floor.getTime()) throw refuse(`revoked (issued before ${floor.toISOString()}, the merchant's tokensIssuedAfter)`);
  return payload.sub;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      merchantId?: string;
    }
  }
}

export function requireMerchant(opts: MerchantAuthOptions): RequestHandler {
  return (req, _res, next) => {
    req.merchantId = verifyMerchantToken(req.headers.authorization, opts);
    next();
  };
}
