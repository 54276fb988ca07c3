/**
 * The hub's own signing key (issue 13, item 4), on PGlite and on PostgreSQL: sealed in the
 * database with hub.keyEncryptionKey (AES-256-GCM, the key id bound in), sealed in place when the
 * setting arrives later, refused without it or with another one; rotated with the previous key kept
 * in the JWKS for the overlap, and gone from it afterwards.
 */
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { BACKENDS, type Backend, type BackendEnv } from '../../integration/backends';
import { loadHubKeys, rotateHubKey, keyEncryptionKey, isSealed, KeyStoreError } from '../../../src/auth/key-store';
import { createHubSigner } from '../../../src/auth/hub-signer';

const kek = () => crypto.randomBytes(32);

describe.each<Backend>(BACKENDS)('hub signing keys in the database ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;
  beforeAll(async () => {
    available = await backend.available();
    if (available) env = await backend.open();
  }, 30_000);
  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);
  const maybe = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, 30_000);
  const stored = async (kid: string) => (await env.db.query<{ private_pem: string }>(`SELECT private_pem FROM hub_keys WHERE kid = $1`, [kid])).rows[0].private_pem;

  maybe('keeps a generated key sealed with the key-encryption key, and needs the same key to read it', async () => {
    await env.db.query(`DELETE FROM hub_keys`);
    const k = kek();
    const now = new Date();
    const { current } = await loadHubKeys(env.db, 'ES256', now, k);
    const raw = await stored(current.kid);
    expect(isSealed(raw)).toBe(true);
    expect(raw).not.toContain('PRIVATE KEY');
    expect((await loadHubKeys(env.db, 'ES256', now, k)).current).toEqual(current);
    await expect(loadHubKeys(env.db, 'ES256', now, undefined)).rejects.toThrow(/stored encrypted, but hub.keyEncryptionKey is not set/);
    await expect(loadHubKeys(env.db, 'ES256', now, kek())).rejects.toThrow(KeyStoreError);
    // A sealed key copied under another key id does not open (the id is bound in).
    await env.db.query(`INSERT INTO hub_keys (kid, alg, private_pem) VALUES ('copied', 'RS256', $1)`, [raw]);
    await expect(loadHubKeys(env.db, 'RS256', now, k)).rejects.toThrow(/cannot be decrypted/);
    await env.db.query(`DELETE FROM hub_keys WHERE kid = 'copied'`);
  });

  maybe('seals a key stored in clear once the setting is given', async () => {
    await env.db.query(`DELETE FROM hub_keys`);
    const now = new Date();
    const clear = await loadHubKeys(env.db, 'RS256', now, undefined);
    expect(await stored(clear.current.kid)).toContain('PRIVATE KEY');
    const k = kek();
    expect((await loadHubKeys(env.db, 'RS256', now, k)).current).toEqual(clear.current);
    expect(isSealed(await stored(clear.current.kid))).toBe(true);
  });

  maybe('rotates: the new key signs, the previous one stays in the JWKS for the overlap, then leaves it', async () => {
    await env.db.query(`DELETE FROM hub_keys`);
    const k = kek();
    const t0 = new Date();
    const before = await loadHubKeys(env.db, 'RS256', t0, k);
    const oldSigner = createHubSigner({ hubId: 'collection-hub', key: before.current });
    const signedBefore = oldSigner.sign({ audience: 'refagency', alg: 'RS256' });

    const rotated = await rotateHubKey(env.db, 'RS256', t0, 3600, k);
    expect(rotated.retired).toEqual([before.current.kid]);
    const during = await loadHubKeys(env.db, 'RS256', new Date(t0.getTime() + 60_000), k);
    expect(during.current.kid).toBe(rotated.kid);
    expect(during.previous.map((p) => p.kid)).toEqual([before.current.kid]);
    const signer = createHubSigner({ hubId: 'collection-hub', key: during.current, previousKeys: during.previous });
    const jwks = signer.jwks().keys as (crypto.JsonWebKey & { kid: string })[];
    expect(jwks.map((j) => j.kid)).toEqual([rotated.kid, before.current.kid]);
    // A token signed just before the rotation still verifies against the published set, and a new one too.
    const verifyWith = (token: string) => {
      const kid = jwt.decode(token, { complete: true })!.header.kid;
      const jwk = jwks.find((j) => j.kid === kid)!;
      return jwt.verify(token, crypto.createPublicKey({ key: jwk, format: 'jwk' }), { algorithms: ['RS256'], audience: 'refagency' });
    };
    expect(verifyWith(signedBefore)).toMatchObject({ iss: 'collection-hub' });
    expect(jwt.decode(signer.sign({ audience: 'refagency', alg: 'RS256' }), { complete: true })!.header.kid).toBe(rotated.kid);
    expect(verifyWith(signer.sign({ audience: 'refagency', alg: 'RS256' }))).toMatchObject({ aud: 'refagency' });

    const after = await loadHubKeys(env.db, 'RS256', new Date(t0.getTime() + 3601_000), k);
    expect(after.current.kid).toBe(rotated.kid);
    expect(after.previous).toEqual([]);
  });

  it('reads the key-encryption key only as 32 bytes of base64', () => {
    expect(keyEncryptionKey(undefined)).toBeUndefined();
    expect(keyEncryptionKey(crypto.randomBytes(32).toString('base64'))!.length).toBe(32);
    expect(keyEncryptionKey(crypto.randomBytes(32).toString('base64url'))!.length).toBe(32);
    expect(() => keyEncryptionKey(crypto.randomBytes(16).toString('base64'))).toThrow(/32 random bytes/);
  });
});
