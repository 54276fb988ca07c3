/**
 * Issue 13, item 1: no known secret is ever accepted. The hub refuses to start, naming the key,
 * when any secret of its config is missing, a placeholder, a published value or too short — for
 * every kind of secret a config holds. A fresh clone with no config still starts: it generates its
 * secrets into the data directory (0600), says where and how to get a merchant token, listens on
 * 127.0.0.1 only, and a token minted from the old published default is refused. The Docker
 * entry point (`--config-required`) never falls back to the example.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import { parseConfig, ConfigError, EXAMPLE_SECRETS, resolveConfigSource, FIRST_START_SECRETS_FILE } from '../../../src/config/load';
import { CONNECTOR_SECRET_FIELDS, KNOWN_PUBLISHED_SECRETS, secretProblem, type SecretKind } from '../../../src/config/secrets';
import { pspConnectors, agencyConnectors } from '../../../connectors/registry';
import { issueMerchantToken } from '../../../src/http/merchant-auth';
import { testSecret } from '../../support/secrets';

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const alnum = () => crypto.randomBytes(24).toString('hex');

/** A config with one merchant using every PSP and a merchant webhook, and both agency kinds. */
function baseConfig() {
  return {
    hub: { id: 'collection-hub', identifierHashSecret: testSecret('identifierHash') },
    auth: { merchantTokenSecret: testSecret('merchantToken'), merchantTokenPreviousSecrets: [testSecret('merchantToken')] },
    merchants: [
      {
        id: 'acme',
        name: 'Acme',
        country: 'NL',
        partner: 'refagency',
        providers: {
          stripe: { webhookSecret: testSecret('stripeWebhook'), apiKey: `sk_test_${alnum()}` },
          mollie: { apiKey: `test_${alnum()}`, webhookSigningSecret: testSecret('mollieWebhook') },
          adyen: { hmacKeys: testSecret('adyenHmac'), basicAuth: { username: 'ws_acme', password: testSecret('basicAuthPassword') } },
          gocardless: { webhookSecret: testSecret('gocardlessWebhook'), accessToken: `sandbox_${alnum()}` },
        },
        webhooks: { url: 'https://acme.test/hooks', secret: testSecret('standardWebhook') },
      },
    ],
    partners: [
      { id: 'refagency', connector: 'reference', baseUrl: 'http://127.0.0.1:4010', auth: { outbound: { alg: 'HS256', secret: testSecret() }, inbound: { alg: 'HS256', secret: testSecret(), previousSecrets: [testSecret()] } } },
      { id: 'riverty', connector: 'riverty', baseUrl: 'http://127.0.0.1:4011', clientId: 'collection-hub', clientSecret: testSecret('clientSecret') },
    ],
  };
}

/** Every secret a config holds: where it is, and which rules apply to it. */
const SLOTS: { path: (string | number)[]; kind: SecretKind; optional?: boolean }[] = [
  { path: ['auth', 'merchantTokenSecret'], kind: 'merchantToken' },
  { path: ['hub', 'identifierHashSecret'], kind: 'identifierHash' },
  { path: ['auth', 'merchantTokenPreviousSecrets', 0], kind: 'merchantToken', optional: true },
  { path: ['partners', 0, 'auth', 'outbound', 'secret'], kind: 'hs256' },
  { path: ['partners', 0, 'auth', 'inbound', 'secret'], kind: 'hs256' },
  { path: ['partners', 0, 'auth', 'inbound', 'previousSecrets', 0], kind: 'hs256', optional: true },
  { path: ['partners', 1, 'clientSecret'], kind: 'clientSecret' },
  { path: ['merchants', 0, 'providers', 'stripe', 'webhookSecret'], kind: 'stripeWebhook' },
  { path: ['merchants', 0, 'providers', 'stripe', 'apiKey'], kind: 'apiKey', optional: true },
  { path: ['merchants', 0, 'providers', 'mollie', 'webhookSigningSecret'], kind: 'mollieWebhook', optional: true },
  { path: ['merchants', 0, 'providers', 'adyen', 'hmacKeys'], kind: 'adyenHmac' },
  { path: ['merchants', 0, 'providers', 'adyen', 'basicAuth', 'password'], kind: 'basicAuthPassword' },
  { path: ['merchants', 0, 'providers', 'gocardless', 'webhookSecret'], kind: 'gocardlessWebhook' },
  { path: ['merchants', 0, 'providers', 'gocardless', 'accessToken'], kind: 'apiKey' },
  { path: ['merchants', 0, 'webhooks', 'secret'], kind: 'standardWebhook' },
];

function setAt(doc: any, p: (string | number)[], value: unknown): void {
  let node = doc;
  for (const k of p.slice(0, -1)) node = node[k];
  if (value === undefined) delete node[p[p.length - 1]];
  else node[p[p.length - 1]] = value;
}

function refusal(doc: unknown): string {
  try {
    parseConfig(YAML.stringify(doc), {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

/** A value of `kind` that is long enough and random, with a placeholder word put in the middle. */
function withWord(kind: SecretKind, word: string): string {
  const v = testSecret(kind);
  return v.slice(0, 10) + word + v.slice(10);
}

/** Values of `kind` that pass every rule but length: the strongest too-short one. */
function tooShort(kind: SecretKind): string | undefined {
  const v = testSecret(kind);
  switch (kind) {
    case 'hs256':
    case 'merchantToken':
    case 'identifierHash':
      return v.slice(0, 31); // 31 bytes of base64url
    case 'stripeWebhook':
      return v.slice(0, 'whsec_'.length + 31);
    case 'mollieWebhook':
    case 'gocardlessWebhook':
      return v.slice(0, 31);
    case 'adyenHmac':
      return v.slice(0, 62); // 31 bytes in hex
    case 'basicAuthPassword':
      return v.slice(0, 23);
    case 'standardWebhook':
      return `whsec_${crypto.randomBytes(23).toString('base64')}`;
    default:
      return undefined; // issued by others in their own format: no length rule
  }
}

const PLACEHOLDER_WORDS = ['change-me', 'changeme', 'placeholder', 'dev-only', 'example', 'CHANGE_ME'];

describe('start-up refuses every weak secret, naming the key', () => {
  it('the base config, every secret random and long enough, is accepted (the control)', () => {
    expect(() => parseConfig(YAML.stringify(baseConfig()), {})).not.toThrow();
  });

  describe.each(SLOTS.map((s) => [s.path.join('.'), s] as const))('%s', (name, slot) => {
    const refusedWith = (value: unknown) => {
      const doc = baseConfig();
      setAt(doc, slot.path, value);
      const message = refusal(doc);
      // The message names the key, and never repeats the value.
      expect(message.startsWith(`${name}: `) || message.startsWith(`${slot.path.slice(0, -1).join('.')}: `)).toBe(true);
      if (typeof value === 'string' && value.length >= 8) expect(message).not.toContain(value);
      return message;
    };

    if (!slot.optional) {
      it('missing', () => {
        refusedWith(undefined);
      });
    }

    it('empty', () => {
      refusedWith('');
    });

    it.each(PLACEHOLDER_WORDS)('a placeholder (%s)', (word) => {
      refusedWith(withWord(slot.kind, word));
    });

    it.each(KNOWN_PUBLISHED_SECRETS.map((v) => [v]))('the published value %s', (value) => {
      refusedWith(value);
    });

    const short = tooShort(slot.kind);
    if (short) {
      it('one character too short', () => {
        expect(refusedWith(short)).toMatch(/at least|must be|must decode/);
      });

      it('long enough but typed by hand', () => {
        const typed: Partial<Record<SecretKind, string>> = {
          adyenHmac: '0123456789ABCDEF'.repeat(4),
          stripeWebhook: 'whsec_abcdefghijklmnopqrstuvwxyz0123456789',
          standardWebhook: 'whsec_abcdefghijklmnopqrstuvwxyz0123456789',
        };
        expect(refusedWith(typed[slot.kind] ?? 'test-merchant-token-secret-0123456789abcdef')).toMatch(/does not look random/);
      });
    }
  });

  it('every registered PSP and agency connector says where its secrets are (a new one cannot slip by unchecked)', () => {
    const registered = [...pspConnectors.keys(), ...agencyConnectors.keys()].sort();
    expect(registered.filter((id) => !CONNECTOR_SECRET_FIELDS[id])).toEqual([]);
  });

  it('the old example defaults are each refused as published, even where their shape would pass', () => {
    expect(secretProblem('dev-only-merchant-token-secret-change-me', 'merchantToken')).toMatch(/placeholder/);
    expect(secretProblem('DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00', 'adyenHmac')).toMatch(/published/);
    expect(secretProblem('dfb1eb5485895cfa84146406857104abb4cbcabdc8aaf103a624c8f6a3eaab00', 'adyenHmac')).toMatch(/published/);
    expect(secretProblem('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'stripeWebhook')).toMatch(/published/);
  });
});

describe('config/hub.example.yaml', () => {
  const text = fs.readFileSync(path.join(ROOT, 'config/hub.example.yaml'), 'utf8');

  it('gives no secret a default value (`${NAME:-…}`), so a published secret is never a live one', () => {
    expect(text).not.toMatch(/\$\{[A-Z0-9_]*(SECRET|WHSEC|TOKEN|KEY|PASS|HMAC)[A-Z0-9_]*:-/);
  });

  it('EXAMPLE_SECRETS names every secret the example needs: with them (and nothing else) it parses', () => {
    const env = Object.fromEntries(Object.entries(EXAMPLE_SECRETS).map(([n, k]) => [n, testSecret(k)]));
    expect(() => parseConfig(text, env)).not.toThrow();
    for (const name of Object.keys(env)) {
      const { [name]: _gone, ...rest } = env;
      expect(() => parseConfig(text, rest)).toThrow(new RegExp(`environment variable ${name} is not set`));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The real entry points, in a scratch directory laid out like a fresh clone (config/ holds only
// the example) or like the Docker image (no config at all).

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(args: string[], cwd: string, env: Record<string, string> = {}): Run {
  const base = { ...process.env };
  for (const k of ['DATABASE_URL', 'REDIS_URL', 'PORT', 'HUB_CONFIG', 'HUB_HOST', ...Object.keys(EXAMPLE_SECRETS)]) delete base[k];
  const child = spawn(TSX, args, { cwd, env: { ...base, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function until<T>(what: string, fn: () => T | undefined, run: Run, ms = 150_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (run.child.exitCode !== null) throw new Error(`exited (${run.child.exitCode}) before ${what}: ${run.stderr()}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${run.stderr()} ${run.stdout()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the entry points', () => {
  let dir: string;
  const runs: Run[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-secrets-'));
  });
  afterEach(async () => {
    for (const r of runs.splice(0)) {
      if (r.child.exitCode === null) {
        r.child.kill('SIGTERM');
        await r.exited;
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a hub whose config holds a placeholder secret exits non-zero and names the key', async () => {
    const doc = baseConfig();
    doc.auth.merchantTokenSecret = 'dev-only-merchant-token-secret-change-me';
    const file = path.join(dir, 'hub.yaml');
    fs.writeFileSync(file, YAML.stringify(doc));
    const run = start([path.join(ROOT, 'src/main.ts')], dir, { HUB_CONFIG: file });
    runs.push(run);
    expect(await run.exited).not.toBe(0);
    expect(run.stderr()).toMatch(/config error: .*auth\.merchantTokenSecret: is a placeholder/);
  }, 60_000);

  it('the Docker entry point (--config-required) without HUB_CONFIG or config/hub.yaml refuses to start, even beside the example', async () => {
    // The image's ENTRYPOINT passes the flag, and the image holds no example to fall back to.
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "dist\/src\/main\.js", "--config-required"\]$/m);
    expect(dockerfile).not.toMatch(/^COPY config\b/m);
    // Even with the example present, the flag refuses it (the pure part, then the process).
    fs.mkdirSync(path.join(dir, 'config'));
    fs.copyFileSync(path.join(ROOT, 'config/hub.example.yaml'), path.join(dir, 'config/hub.example.yaml'));
    expect(() => resolveConfigSource({}, { requireConfig: true, cwd: dir })).toThrow(/no config: set HUB_CONFIG .*config\/hub\.yaml/);
    expect(() => resolveConfigSource({ HUB_CONFIG: 'nowhere.yaml' }, { requireConfig: true, cwd: dir })).toThrow(/HUB_CONFIG: no config file at/);
    const run = start([path.join(ROOT, 'src/main.ts'), '--config-required', 'api'], dir);
    runs.push(run);
    expect(await run.exited).not.toBe(0);
    expect(run.stderr()).toMatch(/config error: no config: set HUB_CONFIG/);
    expect(fs.existsSync(path.join(dir, 'data'))).toBe(false);
  }, 60_000);

  it('a fresh clone starts with no set-up: secrets generated into data/ (0600), 127.0.0.1 only, `npm run token` works, the old default secret does not', async () => {
    fs.mkdirSync(path.join(dir, 'config'));
    fs.copyFileSync(path.join(ROOT, 'config/hub.example.yaml'), path.join(dir, 'config/hub.example.yaml'));
    const run = start([path.join(ROOT, 'src/main.ts')], dir, { PORT: '0' });
    runs.push(run);
    const url = await until('the hub to listen', () => /"url":"(http:\/\/[^"]+)"/.exec(run.stdout() + run.stderr())?.[1], run);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const secretsFile = path.join(dir, 'data', FIRST_START_SECRETS_FILE);
    expect(fs.statSync(secretsFile).mode & 0o777).toBe(0o600);
    expect(run.stderr()).toMatch(/generated just now into data\/secrets\.yaml \(mode 0600/);
    expect(run.stderr()).toMatch(/npm run token -- acme/);
    const secrets = YAML.parse(fs.readFileSync(secretsFile, 'utf8'));
    for (const [name, kind] of Object.entries(EXAMPLE_SECRETS)) expect(secretProblem(secrets[name], kind)).toBeUndefined();

    // `npm run token -- acme` in the same directory mints a token the hub takes.
    const tokenRun = start([path.join(ROOT, 'scripts/token.ts'), 'acme'], dir);
    runs.push(tokenRun);
    expect(await tokenRun.exited).toBe(0);
    const token = tokenRun.stdout().trim();
    const me = await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);

    // The secret the example once shipped as a default opens nothing.
    const forged = issueMerchantToken({ hubId: 'collection-hub', secret: 'dev-only-merchant-token-secret-change-me', merchantId: 'acme', ttlSeconds: 600 });
    expect((await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);
    // Nothing was written into the repository's tree.
    expect(fs.existsSync(path.join(ROOT, 'config', FIRST_START_SECRETS_FILE))).toBe(false);
  }, 240_000);
});
