/**
 * Reads the hub's YAML config (path in HUB_CONFIG, default config/hub.yaml), replaces
 * `${NAME}` from the environment, and validates it. The only module that reads process.env
 * (design.md habit 6). A bad file throws ConfigError naming the field and what is wrong.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, type RawHubConfig, type MerchantConfig } from './schema';
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
    partners.push({ id: p.id, connector: p.connector, config: r.data });
  });

  const seenMerchants = new Set<string>();
  const merchants = raw.merchants.map((m, i) => {
    if (seenMerchants.has(m.id)) throw new ConfigError(`merchants.${i}.id: duplicate merchant id ${m.id}`);
    seenMerchants.add(m.id);
    if (!seenPartners.has(m.partner)) throw new ConfigError(`merchants.${i}.partner: no partner with id ${m.partner}`);
    const providers: Record<string, unknown> = {};
    for (const [pid, block] of Object.entries(m.providers)) {
      const connector = pspConnectors.get(pid);
      if (!connector) {
        throw new ConfigError(`merchants.${i}.providers.${pid}: unknown provider (known: ${[...pspConnectors.keys()].join(', ')})`);
      }
      const r = connector.configSchema.safeParse(block ?? {});
      if (!r.success) throw new ConfigError(formatIssue(['merchants', i, 'providers', pid], r.error.issues[0]));
      providers[pid] = r.data;
    }
    return { ...m, providers };
  });

  return {
    ...raw,
    merchants,
    partners,
    databaseUrl: env.DATABASE_URL || undefined,
    redisUrl: env.REDIS_URL || undefined,
  };
}

/** Path of the config file: HUB_CONFIG, else config/hub.yaml, else the example (so `npm start` works on a fresh clone). */
export function configPath(env: Env = process.env): string {
  if (env.HUB_CONFIG) return path.resolve(env.HUB_CONFIG);
  const def = path.resolve('config/hub.yaml');
  return fs.existsSync(def) ? def : path.resolve('config/hub.example.yaml');
}

export function loadConfig(env: Env = process.env): HubConfig {
  const file = configPath(env);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  try {
    return parseConfig(text, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path.relative(process.cwd(), file)}: ${err.message}`);
    throw err;
  }
}

/** Read-only view of the environment for other modules (kept here so process.env is read in one place). */
export function runtimeEnv(env: Env = process.env): { ci: boolean; nodeEnv: string } {
  return { ci: env.CI === 'true' || env.CI === '1', nodeEnv: env.NODE_ENV ?? 'development' };
}
