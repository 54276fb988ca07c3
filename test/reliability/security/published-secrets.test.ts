/**
 * Issue 13, item 1: "no known secret is ever accepted" — a value written anywhere in this
 * repository (code, tests, simulators, docs, config) is published, so the hub must refuse it as a
 * secret. This test scans the repository for secret-shaped literals and checks that each one is
 * refused by the start-up rules (src/config/secrets.ts): by being a placeholder, too short, typed
 * by hand, or listed in KNOWN_PUBLISHED_SECRETS. A new literal secret that would pass fails here:
 * draw it at run time instead (test/support/secrets.ts), or, when it is a published test vector
 * that must stay verbatim, add it to KNOWN_PUBLISHED_SECRETS.
 */
import fs from 'node:fs';
import path from 'node:path';
import { secretProblem, type SecretKind } from '../../../src/config/secrets';

const ROOT = path.resolve(__dirname, '../../..');
const DIRS = ['config', 'scripts', 'sim', 'src', 'connectors', 'test', 'bench', 'docs', 'mappings'];
const FILES = ['README.md', 'RELIABILITY.md', 'BENCHMARKS.md', 'Dockerfile'];
const TEXT = /\.(ts|js|mjs|cjs|ya?ml|json|md|sh|sql|txt|env)$/;

function files(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'data' || e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (TEXT.test(e.name)) out.push(p);
    }
  };
  for (const d of DIRS) walk(path.join(ROOT, d));
  for (const f of FILES) if (fs.existsSync(path.join(ROOT, f))) out.push(path.join(ROOT, f));
  return out;
}

/** Words on a line that put a literal on it in a secret's place (signatures and digests are not secrets). */
const SECRET_CONTEXT = /secret|passw|api_?key|access_?token/i;
const KEY_CONTEXT = /hmac|key|secret/i;
/** What a literal secret is made of: no paths, URLs, code or prose (`=` only as base64 padding). */
const SECRET_CHARS = /^[A-Za-z0-9_+!#%*@~-]+=*$/;

interface Candidate {
  where: string;
  value: string;
  kinds: SecretKind[];
}

/** Secret-shaped literals of one file, with the kinds of secret each could be taken for. */
function candidates(file: string): Candidate[] {
  const rel = path.relative(ROOT, file);
  const found: Candidate[] = [];
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const where = `${rel}:${i + 1}`;
      // Stripe / Standard Webhooks secrets are recognisable anywhere.
      for (const m of line.matchAll(/whsec_[A-Za-z0-9+/=_-]{8,}/g)) found.push({ where, value: m[0], kinds: ['stripeWebhook', 'standardWebhook'] });
      // An Adyen-shaped key (hex, 32 bytes or more) on a line about keys or secrets.
      if (KEY_CONTEXT.test(line)) {
        for (const m of line.matchAll(/(?<![0-9A-Za-z])[0-9A-Fa-f]{64,}(?![0-9A-Za-z])/g)) found.push({ where, value: m[0], kinds: ['adyenHmac'] });
      }
      if (!SECRET_CONTEXT.test(line)) return;
      // Quoted literals and YAML values of 16+ characters on such a line: an HS256 or PSP secret.
      const generic: SecretKind[] = ['hs256', 'mollieWebhook', 'gocardlessWebhook'];
      for (const m of line.matchAll(/(['"`])([^'"`\s$]{16,})\1/g)) if (SECRET_CHARS.test(m[2])) found.push({ where, value: m[2], kinds: generic });
      for (const m of line.matchAll(/(?:secret|Secret|SECRET|password|Password|hmacKeys|accessToken|apiKey)\s*:\s*([^\s'"`,}{$]{16,})/g)) {
        if (SECRET_CHARS.test(m[1])) found.push({ where, value: m[1], kinds: generic });
      }
    });
  return found;
}

describe('no secret written in this repository is accepted as one', () => {
  const all = files().flatMap(candidates);

  it('the scan finds the literals it is meant to (it is not looking at nothing)', () => {
    expect(all.length).toBeGreaterThan(50);
    // The Adyen library's published test key sits in the Adyen verify test, verbatim.
    expect(all.some((c) => c.value === 'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00')).toBe(true);
  });

  it('every secret-shaped literal is refused for every kind it could be taken for', () => {
    const accepted = all.filter((c) => c.kinds.some((k) => secretProblem(c.value, k) === undefined)).map((c) => `${c.where}: ${c.value}`);
    expect([...new Set(accepted)]).toEqual([]);
  });
});
