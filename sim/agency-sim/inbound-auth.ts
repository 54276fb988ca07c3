/**
 * How the simulated agency checks the hub's bearer JWT on every `/v1/*` call (contract §5):
 * HS256 with a shared secret and/or RS256/ES256 with the hub's public keys fetched from its JWKS.
 * Each refusal carries a code and a message naming the failed check, so a hub developer sees at
 * once whether the audience, the issuer, the algorithm or the clock is wrong.
 */
import crypto from 'node:crypto';
import axios from 'axios';
import jwt from 'jsonwebtoken';

/** Contract §5: `exp` at most 5 minutes after `iat`. */
export const MAX_TOKEN_LIFETIME_SECONDS = 300;
/** Clocks drift; this much either way is tolerated on exp and iat. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/** Keys are re-read this often even when known, so a rotated-out key stops working. */
const JWKS_TTL_MS = 10 * 60_000;
/** An unknown kid triggers a refetch at most this often, so random kids cannot make us hammer the hub. */
const JWKS_MIN_REFETCH_MS = 30_000;

type AsymmetricAlg = 'RS256' | 'ES256';
type Alg = 'HS256' | AsymmetricAlg;

export class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** 401 for a bad token; 503 when the hub's keys cannot be read right now (worth retrying). */
    readonly status = 401,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface InboundAuthOptions {
  partnerId: string;
  hubId: string;
  /** HS256 shared secret. */
  secret?: string;
  /** The hub's `GET /.well-known/jwks.json`. */
  jwksUrl?: string;
  now: () => Date;
}

interface CachedKey {
  kid?: string;
  alg?: string;
  key: crypto.KeyObject;
}

/** The hub's public keys, fetched lazily and refreshed on expiry or on an unknown kid. */
class JwksCache {
  private keys: CachedKey[] = [];
  private fetchedAt = 0;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly url: string,
    private readonly now: () => Date,
  ) {}

  async keyFor(kid: string | undefined, alg: AsymmetricAlg): Promise<crypto.KeyObject> {
    const age = this.now().getTime() - this.fetchedAt;
    if (this.fetchedAt === 0 || age > JWKS_TTL_MS) await this.refresh();
    let found = this.find(kid, alg);
    if (!found && kid !== undefined && this.now().getTime() - this.fetchedAt > JWKS_MIN_REFETCH_MS) {
      // Probably a key the hub rotated in since we last looked.
      await this.refresh();
      found = this.find(kid, alg);
    }
    if (found) return found.key;
    if (kid === undefined) {
      throw new AuthError('missing_kid', `the token has no kid and the hub's JWKS does not hold exactly one ${alg} key`);
    }
    throw new AuthError('unknown_kid', `kid "${kid}" is not an ${alg} key in the hub's JWKS (${this.url})`);
  }

  private find(kid: string | undefined, alg: AsymmetricAlg): CachedKey | undefined {
    const fits = this.keys.filter((k) => fitsAlg(k, alg));
    if (kid === undefined) return fits.length === 1 ? fits[0] : undefined;
    return fits.find((k) => k.kid === kid);
  }

  private refresh(): Promise<void> {
    // Concurrent requests share one fetch.
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async fetch(): Promise<void> {
    let body: unknown;
    try {
      body = (await axios.get(this.url, { timeout: 5000, responseType: 'json' })).data;
    } catch (err) {
      throw new AuthError('jwks_unavailable', `could not read the hub's JWKS at ${this.url}: ${(err as Error).message}`, 503);
    }
    const list = (body as { keys?: unknown })?.keys;
    if (!Array.isArray(list)) throw new AuthError('jwks_unavailable', `the hub's JWKS at ${this.url} has no "keys" array`, 503);
    const keys: CachedKey[] = [];
    for (const jwk of list as Record<string, unknown>[]) {
      if (jwk.use !== undefined && jwk.use !== 'sig') continue;
      try {
        const key = crypto.createPublicKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' });
        keys.push({ kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, alg: typeof jwk.alg === 'string' ? jwk.alg : undefined, key });
      } catch {
        // A key we cannot read is skipped, not fatal: the others may still verify.
      }
    }
    this.keys = keys;
    this.fetchedAt = this.now().getTime();
  }
}

/** Key type must match the algorithm, or RS/ES/HS confusion becomes possible. */
function fitsAlg(k: CachedKey, alg: AsymmetricAlg): boolean {
  if (k.alg !== undefined && k.alg !== alg) return false;
  if (alg === 'RS256') return k.key.asymmetricKeyType === 'rsa';
  return k.key.asymmetricKeyType === 'ec' && k.key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

export type InboundVerifier = (authorization: string | undefined) => Promise<jwt.JwtPayload>;

export function createInboundVerifier(opts: InboundAuthOptions): InboundVerifier {
  const allowed: Alg[] = [];
  if (opts.secret) allowed.push('HS256');
  if (opts.jwksUrl) allowed.push('RS256', 'ES256');
  if (allowed.length === 0) throw new Error('agency simulator: inbound auth needs a secret (--in-secret) or a JWKS URL (--hub-jwks-url)');
  const jwks = opts.jwksUrl ? new JwksCache(opts.jwksUrl, opts.now) : undefined;

  return async (authorization) => {
    if (!authorization) throw new AuthError('missing_token', 'Authorization: Bearer <JWT> is required');
    const m = /^Bearer +(\S+)\s*$/i.exec(authorization);
    if (!m) throw new AuthError('invalid_authorization', 'the Authorization header must be "Bearer <JWT>"');
    const token = m[1];

    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') throw new AuthError('malformed_token', 'the bearer token is not a JWT');
    const alg = decoded.header.alg;
    if (!(allowed as string[]).includes(alg)) {
      throw new AuthError('alg_not_allowed', `alg "${alg}" is not accepted here; allowed: ${allowed.join(', ')}`);
    }

    const key = alg === 'HS256' ? opts.secret! : await jwks!.keyFor(decoded.header.kid, alg as AsymmetricAlg);
    let payload: jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key, {
        algorithms: [alg as Alg],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        clockTimestamp: Math.floor(opts.now().getTime() / 1000),
      }) as jwt.JwtPayload;
    } catch (err) {
      if (err instanceof jwt.TokenExpiredError) throw new AuthError('token_expired', `the token expired at ${err.expiredAt.toISOString()}`);
      if (err instanceof jwt.NotBeforeError) throw new AuthError('token_not_yet_valid', 'the token is not valid yet (nbf)');
      const message = (err as Error).message;
      if (message === 'invalid signature') throw new AuthError('invalid_signature', 'the token signature does not verify');
      throw new AuthError('invalid_token', `the token does not verify: ${message}`);
    }

    // Claims checked here rather than by jsonwebtoken, so each refusal says what was expected and what came.
    const aud = Array.isArray(payload.aud) ? payload.aud : payload.aud === undefined ? [] : [payload.aud];
    if (!aud.includes(opts.partnerId)) {
      throw new AuthError('invalid_audience', `aud must be "${opts.partnerId}" (this agency's partner id), got ${JSON.stringify(payload.aud ?? null)}`);
    }
    if (payload.iss !== opts.hubId) {
      throw new AuthError('invalid_issuer', `iss must be "${opts.hubId}" (the hub id), got ${JSON.stringify(payload.iss ?? null)}`);
    }
    if (typeof payload.exp !== 'number') throw new AuthError('missing_exp', 'exp is required');
    if (typeof payload.iat !== 'number') throw new AuthError('missing_iat', 'iat is required (exp is bounded by it)');
    if (payload.exp - payload.iat > MAX_TOKEN_LIFETIME_SECONDS) {
      throw new AuthError(
        'token_lifetime_too_long',
        `exp is ${payload.exp - payload.iat} s after iat; at most ${MAX_TOKEN_LIFETIME_SECONDS} s is accepted`,
      );
    }
    const nowSeconds = opts.now().getTime() / 1000;
    if (payload.iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) {
      throw new AuthError('iat_in_future', `iat is ${Math.round(payload.iat - nowSeconds)} s in the future`);
    }
    return payload;
  };
}
