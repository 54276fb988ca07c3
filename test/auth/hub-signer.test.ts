/**
 * The hub's outbound JWTs (contract §5): verifiable with the published JWKS, the right claims,
 * a lifetime of at most five minutes, and refusals when the key material does not fit.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createHubSigner, generateHubKey, MAX_TOKEN_TTL_SECONDS } from '../../src/auth/hub-signer';

const SECRET = 'a-shared-secret-of-at-least-32-bytes!!';

function publicKeyFromJwks(jwks: { keys: object[] }, kid: string): crypto.KeyObject {
  const jwk = jwks.keys.find((k) => (k as { kid?: string }).kid === kid);
  if (!jwk) throw new Error(`no key ${kid} in JWKS`);
  return crypto.createPublicKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' });
}

describe('createHubSigner', () => {
  it.each(['RS256', 'ES256'] as const)('signs %s tokens that verify with the JWKS key and carry kid', (alg) => {
    const key = generateHubKey(alg);
    const signer = createHubSigner({ hubId: 'collection-hub', key });
    const token = signer.sign({ audience: 'refagency', alg });

    const header = jwt.decode(token, { complete: true })!.header;
    expect(header).toMatchObject({ alg, kid: key.kid });

    const claims = jwt.verify(token, publicKeyFromJwks(signer.jwks(), key.kid), {
      algorithms: [alg],
      issuer: 'collection-hub',
      audience: 'refagency',
    }) as jwt.JwtPayload;
    expect(claims.exp! - claims.iat!).toBe(120);
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('publishes only the public half of the key, with kid, alg and use', () => {
    const key = generateHubKey('ES256');
    const [jwk] = createHubSigner({ hubId: 'hub', key }).jwks().keys as Record<string, unknown>[];
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', kid: key.kid, alg: 'ES256', use: 'sig' });
    expect(jwk).not.toHaveProperty('d');

    const rsa = generateHubKey('RS256');
    const [rsaJwk] = createHubSigner({ hubId: 'hub', key: rsa }).jwks().keys as Record<string, unknown>[];
    expect(rsaJwk).toMatchObject({ kty: 'RSA', kid: rsa.kid, alg: 'RS256', use: 'sig' });
    for (const privatePart of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(rsaJwk).not.toHaveProperty(privatePart);
  });

  it('publishes an empty key set when the hub has no key', () => {
    expect(createHubSigner({ hubId: 'hub' }).jwks()).toEqual({ keys: [] });
  });

  it('signs HS256 with the partner secret and no kid', () => {
    const token = createHubSigner({ hubId: 'hub' }).sign({ audience: 'refagency', alg: 'HS256', secret: SECRET });
    const decoded = jwt.decode(token, { complete: true })!;
    expect(decoded.header.alg).toBe('HS256');
    expect(decoded.header.kid).toBeUndefined();
    const claims = jwt.verify(token, SECRET, { algorithms: ['HS256'], issuer: 'hub', audience: 'refagency' }) as jwt.JwtPayload;
    expect(typeof claims.iat).toBe('number');
  });

  it('refuses HS256 without a secret', () => {
    expect(() => createHubSigner({ hubId: 'hub' }).sign({ audience: 'refagency', alg: 'HS256' })).toThrow(/needs the partner's shared secret/);
  });

  it('refuses an HS256 secret shorter than 32 bytes', () => {
    expect(() => createHubSigner({ hubId: 'hub' }).sign({ audience: 'a', alg: 'HS256', secret: 'short' })).toThrow(/shorter than 32 bytes/);
  });

  it('refuses RS256/ES256 when the hub has no key', () => {
    expect(() => createHubSigner({ hubId: 'hub' }).sign({ audience: 'refagency', alg: 'RS256' })).toThrow(/needs the hub key/);
  });

  it('refuses an alg that does not match the hub key', () => {
    const signer = createHubSigner({ hubId: 'hub', key: generateHubKey('RS256') });
    expect(() => signer.sign({ audience: 'refagency', alg: 'ES256' })).toThrow(/is RS256/);
  });

  it('refuses at creation a key whose type does not fit its alg', () => {
    const rsa = generateHubKey('RS256');
    expect(() => createHubSigner({ hubId: 'hub', key: { ...rsa, alg: 'ES256' } })).toThrow(/EC P-256/);
    expect(() => createHubSigner({ hubId: 'hub', key: { ...rsa, privateKeyPem: 'not a pem' } })).toThrow(/not a readable private key/);
  });

  it('caps the lifetime at five minutes and honours shorter ones', () => {
    const signer = createHubSigner({ hubId: 'hub' });
    const long = jwt.decode(signer.sign({ audience: 'a', alg: 'HS256', secret: SECRET, ttlSeconds: 3600 })) as jwt.JwtPayload;
    expect(long.exp! - long.iat!).toBe(MAX_TOKEN_TTL_SECONDS);
    const short = jwt.decode(signer.sign({ audience: 'a', alg: 'HS256', secret: SECRET, ttlSeconds: 30 })) as jwt.JwtPayload;
    expect(short.exp! - short.iat!).toBe(30);
    expect(() => signer.sign({ audience: 'a', alg: 'HS256', secret: SECRET, ttlSeconds: 0 })).toThrow(/at least 1/);
  });

  it('gives every token its own jti', () => {
    const signer = createHubSigner({ hubId: 'hub' });
    const ids = new Set(
      Array.from({ length: 20 }, () => (jwt.decode(signer.sign({ audience: 'a', alg: 'HS256', secret: SECRET })) as jwt.JwtPayload).jti),
    );
    expect(ids.size).toBe(20);
  });

  it('refuses an unsupported alg coming from untyped config', () => {
    const signer = createHubSigner({ hubId: 'hub' });
    expect(() => signer.sign({ audience: 'a', alg: 'none' as never })).toThrow(/unsupported alg/);
  });
});

describe('generateHubKey', () => {
  it('makes RSA 2048 keys for RS256 and P-256 keys for ES256, each with a distinct kid', () => {
    const rsa = generateHubKey('RS256');
    const rsaKey = crypto.createPrivateKey(rsa.privateKeyPem);
    expect(rsaKey.asymmetricKeyType).toBe('rsa');
    expect(rsaKey.asymmetricKeyDetails?.modulusLength).toBe(2048);

    const ec = generateHubKey('ES256');
    expect(crypto.createPrivateKey(ec.privateKeyPem).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(ec.kid).not.toBe(rsa.kid);
  });
  it('builds the HS256 key once per secret, and a rotated secret signs with the new one at once', () => {
    const spy = jest.spyOn(crypto, 'createSecretKey');
    try {
      const signer = createHubSigner({ hubId: 'hub' });
      const tokens = Array.from({ length: 5 }, () => signer.sign({ audience: 'refagency', alg: 'HS256', secret: SECRET }));
      expect(spy).toHaveBeenCalledTimes(1);
      for (const t of tokens) expect(() => jwt.verify(t, SECRET, { algorithms: ['HS256'], issuer: 'hub', audience: 'refagency' })).not.toThrow();

      const rotated = `${SECRET}-rotated`;
      const next = signer.sign({ audience: 'refagency', alg: 'HS256', secret: rotated });
      expect(spy).toHaveBeenCalledTimes(2);
      expect(() => jwt.verify(next, rotated, { algorithms: ['HS256'] })).not.toThrow();
      expect(() => jwt.verify(next, SECRET, { algorithms: ['HS256'] })).toThrow(/invalid signature/);
      // Another partner's secret is its own key: nothing signed for one verifies with the other.
      const other = 'another-partner-secret-of-32-bytes-or-more';
      expect(() => jwt.verify(signer.sign({ audience: 'other', alg: 'HS256', secret: other }), SECRET, { algorithms: ['HS256'] })).toThrow(/invalid signature/);
    } finally {
      spy.mockRestore();
    }
  });
});
