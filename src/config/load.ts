/**
 * Reads the hub's YAML config (path in HUB_CONFIG, default config/hub.yaml; on a fresh clone the
 * example with secrets generated into the data directory), replaces
 * `${NAME}` from the environment, and validates it. The only module that reads process.env
 * (design.md habit 6). A bad file throws ConfigError naming the field and what is wrong.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, type RawHubConfig, type MerchantConfig } from './schema';
import { connectorSecretProblem, generateSecret, secretProblem, type SecretKind } from './secrets';
import { pspConnectors, agencyConnectors } from '../../connectors/registry';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface PartnerSettings {
  id: string;
  connector: string;
  /** The partner block as parsed by its connector's schema. */
  config: any;
}

export interface HubConfig extends Omit<RawHubConfig, 'partners' | 'merchants'> {
  merchants: (Omit<MerchantConfig, 'providers'> & { providers: Record<string, any> })[];
  partners: PartnerSettings[];
  /** PostgreSQL when set; the embedded database under hub.dataDir otherwise. */
  databaseUrl?: string;
  /** DATABASE_PREPARED_STATEMENTS=off: no named statements (behind a pooler that cannot keep them; src/store/postgres.ts). */
  databasePreparedStatements?: boolean;
  /** BullMQ on Redis when set; the in-process queue otherwise. */
  redisUrl?: string;
}

export type Env = Record<string, string | undefined>;

const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * `${NAME}` and `${NAME:-default}` from env in one string; an unset name without default is an
 * error naming `where` (the field path).
 */
export function substituteEnv(text: string, env: Env, where = '(config)'): string {
  return text.replace(REF, (_m, name: string, def: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    throw new ConfigError(`${where}: environment variable ${name} is not set (referenced as \${${name}})`);
  });
}

/**
 * Substitution happens on the parsed document, not on the file's text: each `${…}` is first
 * swapped for a plain placeholder (so `{ webhookSecret: ${X} }` in a flow mapping parses, as in
 * contract §7), the YAML is parsed, and placeholders left in string values are then resolved.
 * So comments are never read, and a secret with YAML characters (`#`, `: `) is taken whole.
 * A value that is exactly one reference and reads as a number or boolean becomes one.
 */
function parseWithEnv(text: string, env: Env): unknown {
  const refs: string[] = [];
  const marked = text.replace(REF, (m) => `__hubenv${refs.push(m) - 1}__`);
  const doc = YAML.parse(marked);
  const resolve = (node: unknown, path: string[]): unknown => {
    if (typeof node === 'string') {
      const where = path.join('.') || '(root)';
      const whole = /^__hubenv(\d+)__$/.exec(node);
      const out = node.replace(/__hubenv(\d+)__/g, (_m, i: string) => substituteEnv(refs[Number(i)], env, where));
      if (whole && out !== node) {
        if (/^-?\d+(\.\d+)?$/.test(out)) return Number(out);
        if (out === 'true' || out === 'false') return out === 'true';
      }
      return out;
    }
    if (Array.isArray(node)) return node.map((v, i) => resolve(v, [...path, String(i)]));
    if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v, [...path, k])]));
    return node;
  };
  return resolve(doc, []);
}

function formatIssue(prefix: (string | number | symbol)[], issue: z.core.$ZodIssue): string {
  const p = [...prefix, ...issue.path].map(String);
  return `${p.join('.') || '(root)'}: ${issue.message}`;
}

/** Parse and validate config text. Throws ConfigError naming the field. */
export function parseConfig(text: string, env: Env = {}): HubConfig {
  let doc: unknown;
  try {
    doc = parseWithEnv(text, env);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`not valid YAML: ${(err as Error).message}`);
  }
  const parsed = configSchema.safeParse(doc ?? {});
  if (!parsed.success) throw new ConfigError(formatIssue([], parsed.error.issues[0]));
  const raw = parsed.data;
  if (env.PORT) {
    const port = Number(env.PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`PORT: not a port number: ${env.PORT}`);
    raw.hub.port = port;
  }
  if (env.LOG_LEVEL) raw.hub.logLevel = env.LOG_LEVEL as RawHubConfig['hub']['logLevel'];

  const partners: PartnerSettings[] = [];
  const seenPartners = new Set<string>();
  raw.partners.forEach((p, i) => {
    if (seenPartners.has(p.id)) throw new ConfigError(`partners.${i}.id: duplicate partner id ${p.id}`);
    seenPartners.add(p.id);
    const connector = agencyConnectors.get(p.connector);
    if (!connector) {
      throw new ConfigError(`partners.${i}.connector: unknown connector ${p.connector} (known: ${[...agencyConnectors.keys()].join(', ')})`);
    }
    const r = connector.configSchema.safeParse(p);
    if (!r.success) throw new ConfigError(formatIssue(['partners', i], r.error.issues[0]));
    const weak = connectorSecretProblem(p.connector, r.data);
    if (weak) throw new ConfigError(`partners.${i}.${weak.path}: ${weak.problem}`);
    partners.push({ id: p.id, connector: p.connector, config: r.data });
  });

  const seenMerchants = new Set<string>();
  const merchants = raw.merchants.map((m, i) => {
    if (seenMerchants.has(m.id)) throw new ConfigError(`merchants.${i}.id: duplicate merchant id ${m.id}`);
    seenMerchants.add(m.id);
    if (!seenPartners.has(m.partner)) throw new ConfigError(`merchants.${i}.partner: no partner with id ${m.partner}`);
    const weakHook = m.webhooks ? secretProblem(m.webhooks.secret, 'standardWebhook') : undefined;
    if (weakHook) throw new ConfigError(`merchants.${i}.webhooks.secret: ${weakHook}`);
    const providers: Record<string, unknown> = {};
    for (const [pid, block] of Object.entries(m.providers)) {
      const connector = pspConnectors.get(pid);
      if (!connector) {
        throw new ConfigError(`merchants.${i}.providers.${pid}: unknown provider (known: ${[...pspConnectors.keys()].join(', ')})`);
      }
      const r = connector.configSchema.safeParse(block ?? {});
      if (!r.success) throw new ConfigError(formatIssue(['merchants', i, 'providers', pid], r.error.issues[0]));
      const weak = connectorSecretProblem(pid, r.data);
      if (weak) throw new ConfigError(`merchants.${i}.providers.${pid}.${weak.path}: ${weak.problem}`);
      providers[pid] = r.data;
    }
    return { ...m, providers };
  });

  return {
    ...raw,
    merchants,
    partners,
    databaseUrl: env.DATABASE_URL || undefined,
    databasePreparedStatements: env.DATABASE_PREPARED_STATEMENTS !== 'off',
    redisUrl: env.REDIS_URL || undefined,
  };
}

/**
 * The secrets config/hub.example.yaml takes from the environment, with their kinds: what a first
 * start without a config generates (test/reliability/security/startup-secrets.test.ts checks that
 * this list covers every `${NAME}` the example needs).
 */
export const EXAMPLE_SECRETS: Readonly<Record<string, SecretKind>> = {
  HUB_MERCHANT_TOKEN_SECRET: 'merchantToken',
  ACME_STRIPE_WHSEC: 'stripeWebhook',
  REFAGENCY_OUT_SECRET: 'hs256',
  REFAGENCY_IN_SECRET: 'hs256',
  HUB_IDENTIFIER_HASH_SECRET: 'identifierHash',
};

/** Where a first start keeps the secrets it generated, inside the data directory. */
export const FIRST_START_SECRETS_FILE = 'secrets.yaml';

export interface ConfigSource {
  /** The config file to read. */
  file: string;
  /** Set when no config exists and the example runs with secrets generated into the data directory. */
  firstStart?: { dataDir: string };
}

/**
 * Which config file to read: HUB_CONFIG (it must exist), else config/hub.yaml, else — only when
 * `requireConfig` is not set — the example with generated secrets (a fresh clone's `npm start`).
 * The Docker image sets `requireConfig` (`--config-required`): a container never runs the example.
 */
export function resolveConfigSource(env: Env = process.env, opts: { requireConfig?: boolean; cwd?: string } = {}): ConfigSource {
  const cwd = opts.cwd ?? process.cwd();
  if (env.HUB_CONFIG) {
    const file = path.resolve(cwd, env.HUB_CONFIG);
    if (!fs.existsSync(file)) throw new ConfigError(`HUB_CONFIG: no config file at ${file}`);
    return { file };
  }
  const def = path.resolve(cwd, 'config/hub.yaml');
  if (fs.existsSync(def)) return { file: def };
  if (opts.requireConfig) {
    throw new ConfigError(
      `no config: set HUB_CONFIG to the config file, or mount it at ${def} (e.g. -v ./hub.yaml:${def}:ro). ` +
        'This entry point never falls back to the example config; its secrets come from the environment through ${NAME} references.',
    );
  }
  return { file: path.resolve(cwd, 'config/hub.example.yaml'), firstStart: { dataDir: path.resolve(cwd, 'data') } };
}

const SECRETS_FILE_HEADER =
  '# Secrets generated by the first start of collection-hub without a config (config/hub.example.yaml).\n' +
  '# Keep this file private. Delete it to have new ones generated (merchant tokens issued before stop working).\n';

function readSecretsFile(file: string): Record<string, unknown> {
  const doc = YAML.parse(fs.readFileSync(file, 'utf8')) as unknown;
  return doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : {};
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * A secrets file written before a secret joined EXAMPLE_SECRETS (e.g. HUB_IDENTIFIER_HASH_SECRET,
 * issue 17) gets the missing ones generated and added, the others kept as they are: deleting the
 * file would also end every merchant token issued with it. One process adds them (a lock file
 * created exclusively), the file is replaced whole (written aside, then renamed), and every process
 * reads the result, so processes starting together use the same values.
 */
function addMissingSecrets(file: string): Record<string, unknown> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    let fd: number;
    try {
      fd = fs.openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`cannot write ${lock}: ${(err as Error).message}`);
      const doc = readSecretsFile(file);
      if (Object.keys(EXAMPLE_SECRETS).every((n) => typeof doc[n] === 'string')) return doc;
      if (Date.now() > deadline) throw new ConfigError(`${file}: another process holds ${lock} (delete it if no hub is starting)`);
      sleepSync(50);
      continue;
    }
    try {
      const doc = readSecretsFile(file);
      const added = Object.fromEntries(
        Object.entries(EXAMPLE_SECRETS).filter(([name]) => typeof doc[name] !== 'string').map(([name, kind]) => [name, generateSecret(kind)]),
      );
      if (!Object.keys(added).length) return doc;
      const merged = { ...doc, ...added };
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, SECRETS_FILE_HEADER + YAML.stringify(merged), { mode: 0o600 });
      fs.renameSync(tmp, file);
      return merged;
    } finally {
      fs.closeSync(fd);
      fs.rmSync(lock, { force: true });
    }
  }
}

/**
 * The secrets of a first start: read from `<dataDir>/secrets.yaml`, or generated there once (mode
 * 0600, created exclusively so two processes starting together end up with the same file). The
 * environment still wins over the file, so one secret can be set by hand. A secret the file lacks
 * (added to the example after the file was written) is generated into it (addMissingSecrets).
 */
export function firstStartSecrets(dataDir: string): { file: string; created: boolean; values: Record<string, string> } {
  const file = path.join(dataDir, FIRST_START_SECRETS_FILE);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const values = Object.fromEntries(Object.entries(EXAMPLE_SECRETS).map(([name, kind]) => [name, generateSecret(kind)]));
  const text = SECRETS_FILE_HEADER + YAML.stringify(values);
  let created = true;
  try {
    fs.writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`cannot write ${file}: ${(err as Error).message}`);
    created = false;
  }
  if (!created) {
    // A copy made readable to others by hand is made private again.
    if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
    let doc = readSecretsFile(file);
    if (!Object.keys(EXAMPLE_SECRETS).every((name) => typeof doc[name] === 'string')) doc = addMissingSecrets(file);
    const read: Record<string, string> = {};
    for (const name of Object.keys(EXAMPLE_SECRETS)) {
      const v = doc[name];
      if (typeof v !== 'string') throw new ConfigError(`${file}: ${name} is missing (delete the file to have new secrets generated)`);
      read[name] = v;
    }
    return { file, created, values: read };
  }
  return { file, created, values };
}

/** Path of the config file (see resolveConfigSource). */
export function configPath(env: Env = process.env): string {
  return resolveConfigSource(env).file;
}

export interface LoadedConfig {
  config: HubConfig;
  source: ConfigSource;
  /** On a first start: where the generated secrets are and whether this start made them. */
  generated?: { file: string; created: boolean };
}

/** Reads, resolves and validates the config (resolveConfigSource says which file). */
export function loadConfigSource(env: Env = process.env, opts: { requireConfig?: boolean; cwd?: string } = {}): LoadedConfig {
  const source = resolveConfigSource(env, opts);
  const file = source.file;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let effectiveEnv = env;
  let generated: LoadedConfig['generated'];
  if (source.firstStart) {
    const secrets = firstStartSecrets(source.firstStart.dataDir);
    generated = { file: secrets.file, created: secrets.created };
    effectiveEnv = { ...secrets.values, ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')) };
  }
  try {
    return { config: parseConfig(text, effectiveEnv), source, generated };
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path.relative(opts.cwd ?? process.cwd(), file)}: ${err.message}`);
    throw err;
  }
}

export function loadConfig(env: Env = process.env): HubConfig {
  return loadConfigSource(env).config;
}

/** Read-only view of the environment for other modules (kept here so process.env is read in one place). */
export function runtimeEnv(env: Env = process.env): { ci: boolean; nodeEnv: string } {
  return { ci: env.CI === 'true' || env.CI === '1', nodeEnv: env.NODE_ENV ?? 'development' };
}
