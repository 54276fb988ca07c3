/**
 * Merchant tokens (contract §6): HS256 JWTs issued by the hub, `sub` = merchant id,
 * `aud` = hub id, `iss` = hub id (the hub issues them), `exp` required, `nbf` honoured. Only
 * HS256 is accepted, so `alg: none` and key confusion (an RS256 token, or an HS256 token keyed
 * with the hub's public JWKS key) fail. No clock tolerance: the hub issues and checks them itself.
 */
import jwt from 'jsonwebtoken';
import type { RequestHandler } from 'express';
import { HttpError } from './errors';

export interface MerchantAuthOptions {
  hubId: string;
  secret: string;
  merchantIds: Set<string>;
}

export function issueMerchantToken(opts: { hubId: string; secret: string; merchantId: string; ttlSeconds: number }): string {
  return jwt.sign({}, opts.secret, { algorithm: 'HS256', subject: opts.merchantId, audience: opts.hubId, issuer: opts.hubId, expiresIn: opts.ttlSeconds });
}

export function verifyMerchantToken(header: string | undefined, opts: MerchantAuthOptions): string {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) throw new HttpError(401, 'unauthorized', 'missing bearer token (Authorization: Bearer <merchant token>)');
  let payload: jwt.JwtPayload;
  try {
    payload = jwt.verify(m[1], opts.secret, { algorithms: ['HS256'], audience: opts.hubId, issuer: opts.hubId }) as jwt.JwtPayload;
  } catch (err) {
    // jsonwebtoken's messages name the failed check (expired, nbf, audience, issuer…), never the token.
    if (err instanceof jwt.TokenExpiredError) throw new HttpError(401, 'unauthorized', 'invalid token: expired');
    if (err instanceof jwt.NotBeforeError) throw new HttpError(401, 'unauthorized', 'invalid token: not yet valid (nbf)');
    const reason = (err as Error).message;
    throw new HttpError(401, 'unauthorized', reason.startsWith('invalid token') ? reason : `invalid token: ${reason}`);
  }
  if (typeof payload !== 'object' || payload === null) throw new HttpError(401, 'unauthorized', 'invalid token: the payload is not a claims object');
  if (typeof payload.exp !== 'number') throw new HttpError(401, 'unauthorized', 'invalid token: exp is required');
  if (typeof payload.sub !== 'string' || !opts.merchantIds.has(payload.sub)) throw new HttpError(401, 'unauthorized', 'invalid token: unknown merchant');
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
