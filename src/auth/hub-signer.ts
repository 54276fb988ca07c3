/**
 * The hub's own JWT signer for outbound agency calls (contract §5): short-lived tokens with
 * `iss` = hub id, `aud` = partner id, `iat`, `exp`, `jti`, signed HS256 with the partner's shared
 * secret or RS256/ES256 with the hub's key, whose public half is served at
 * `GET /.well-known/jwks.json` (see `jwks()`).
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { HubTokenSigner } from '../../connectors/agency/types';

export type HubKeyAlg = 'RS256' | 'ES256';

/** The hub's asymmetric signing key, as it sits in configuration. */
export interface HubKey {
  kid: string;
  alg: HubKeyAlg;
  privateKeyPem: string;
}

export interface HubSigner extends HubTokenSigner {
  /** The public JWK set for `GET /.well-known/jwks.json`; `{ keys: [] }` when the hub has no key. */
  jwks(): { keys: object[] };
}

/** Contract §5: `exp` at most 5 minutes after `iat`. */
export const MAX_TOKEN_TTL_SECONDS = 300;
/** Short enough that a leaked token is nearly useless, long enough for slow agencies and clock drift. */
export const DEFAULT_TOKEN_TTL_SECONDS = 120;

/** HS256 keys shorter than the hash output are forbidden by RFC 7518 §3.2. */
const MIN_HS256_SECRET_BYTES = 32;

/**
 * Parse the hub key once, so a wrong PEM or a key that does not fit its `alg` stops start-up
 * rather than failing the first delivery.
 */
function loadHubKey(key: HubKey): crypto.KeyObject {
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key.privateKeyPem);
  } catch (err) {
    throw new Error(`hub key ${key.kid}: privateKeyPem is not a readable private key (${(err as Error).message})`);
  }
  if (key.alg === 'RS256' && privateKey.asymmetricKeyType !== 'rsa') {
    throw new Error(`hub key ${key.kid}: alg RS256 needs an RSA key, got ${privateKey.asymmetricKeyType}`);
  }
  if (key.alg === 'ES256') {
    const curve = privateKey.asymmetricKeyDetails?.namedCurve;
    if (privateKey.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
      throw new Error(`hub key ${key.kid}: alg ES256 needs an EC P-256 key, got ${privateKey.asymmetricKeyType} ${curve ?? ''}`.trim());
    }
  }
  return privateKey;
}

function ttlOf(ttlSeconds: number | undefined): number {
  if (ttlSeconds === undefined) return DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 1) {
    throw new Error(`hub signer: ttlSeconds must be at least 1, got ${ttlSeconds}`);
  }
  // Capped rather than refused: the contract bounds the lifetime, callers only suggest one.
  return Math.min(Math.floor(ttlSeconds), MAX_TOKEN_TTL_SECONDS);
}

/** Partners' shared secrets held at once; more than this (secrets rotated many times) starts the cache over. */
const MAX_CACHED_SECRETS = 64;

/**
 * `previousKeys`: keys replaced in a rotation, still published in the JWKS (never used to sign)
 * until they are removed, so tokens signed just before the rotation still verify at the agency.
 */
export function createHubSigner(opts: { hubId: string; key?: HubKey; previousKeys?: HubKey[] }): HubSigner {
  if (!opts.hubId) throw new Error('hub signer: hubId is required (it is the iss of every token)');
  const key = opts.key;
  const privateKey = key ? loadHubKey(key) : undefined;
  const previous = (opts.previousKeys ?? []).filter((k) => k.kid !== key?.kid).map((k) => ({ key: k, publicKey: crypto.createPublicKey(loadHubKey(k)) }));
  /**
   * HS256 secrets as KeyObjects, built once per secret. Given a string, jsonwebtoken first tries
   * (and fails) to parse it as a PEM private key, then builds a secret key — on every call, and
   * every agency call signs a token. Keyed by the secret itself, so a rotated secret is a new key.
   */
  const secretKeys = new Map<string, crypto.KeyObject>();
  const secretKey = (secret: string): crypto.KeyObject => {
    let k = secretKeys.get(secret);
    if (!k) {
      if (secretKeys.size >= MAX_CACHED_SECRETS) secretKeys.clear();
      k = crypto.createSecretKey(Buffer.from(secret, 'utf8'));
      secretKeys.set(secret, k);
    }
    return k;
  };

  return {
    sign({ audience, alg, secret, ttlSeconds }) {
      if (!audience) throw new Error('hub signer: audience (the partner id) is required');
      const expiresIn = ttlOf(ttlSeconds);
      let signingKey: string | crypto.KeyObject;
      let keyid: string | undefined;
      if (alg === 'HS256') {
        if (!secret) throw new Error(`hub signer: HS256 token for ${audience} needs the partner's shared secret, none given`);
        if (Buffer.byteLength(secret, 'utf8') < MIN_HS256_SECRET_BYTES) {
          throw new Error(`hub signer: HS256 secret for ${audience} is shorter than ${MIN_HS256_SECRET_BYTES} bytes`);
        }
        signingKey = secretKey(secret);
      } else if (alg === 'RS256' || alg === 'ES256') {
        if (!key || !privateKey) throw new Error(`hub signer: ${alg} token for ${audience} needs the hub key, none is configured`);
        if (key.alg !== alg) throw new Error(`hub signer: ${alg} token for ${audience} asked, but the hub key ${key.kid} is ${key.alg}`);
        signingKey = privateKey;
        keyid = key.kid;
      } else {
        // Reachable from untyped config; refusing here keeps `none` and friends out for good.
        throw new Error(`hub signer: unsupported alg ${String(alg)}`);
      }
      return jwt.sign({}, signingKey, {
        algorithm: alg,
        issuer: opts.hubId,
        audience,
        expiresIn,
        jwtid: crypto.randomUUID(),
        ...(keyid ? { keyid } : {}),
      });
    },

    jwks() {
      const keys: object[] = [];
      if (key && privateKey) keys.push({ ...crypto.createPublicKey(privateKey).export({ format: 'jwk' }), kid: key.kid, alg: key.alg, use: 'sig' });
      for (const p of previous) keys.push({ ...p.publicKey.export({ format: 'jwk' }), kid: p.key.kid, alg: p.key.alg, use: 'sig' });
      return { keys };
    },
  };
}

/** A fresh hub key: RSA 2048 for RS256, P-256 for ES256; `kid` is random so rotated keys never collide. */
export function generateHubKey(alg: HubKeyAlg): HubKey {
  const { privateKey } =
    alg === 'RS256'
      ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    kid: crypto.randomBytes(12).toString('base64url'),
    alg,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}
