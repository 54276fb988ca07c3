/**
 * Random secrets for tests. Every config a test builds must pass the hub's secret rules
 * (src/config/secrets.ts: length, no placeholder, no published value), and a secret written as a
 * literal in this repository is a published one — so tests draw theirs fresh, per test file.
 */
import { generateSecret, type SecretKind } from '../../src/config/secrets';
import { createIdentifierHasher, type IdentifierHasher } from '../../src/screening/identifiers';

/** A new random secret of `kind` (default: an HS256 key of 32 random bytes). */
export function testSecret(kind: SecretKind = 'hs256'): string {
  return generateSecret(kind);
}

let hasher: IdentifierHasher | undefined;

/** An identifier hasher (screening, src/screening/identifiers.ts) keyed with a secret drawn fresh for this test file. */
export function testIdentifierHasher(): IdentifierHasher {
  return (hasher ??= createIdentifierHasher(generateSecret('identifierHash')));
}
