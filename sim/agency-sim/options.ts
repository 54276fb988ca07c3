/**
 * The agency simulator's settings: one table of flags (used for CLI parsing, env variables and
 * `--help`), the zod schema that checks them, and the defaults. A bad value stops start-up with
 * a message naming the flag, rather than surfacing later as odd behaviour.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULT_SCENARIO_MIX, parseScenarioMix } from './scenarios';
import { describeBodyError } from './schemas';

type FlagType = 'string' | 'integer' | 'number' | 'boolean';

export interface FlagSpec {
  /** The option key in AgencySimulatorOptions. */
  key: keyof SimulatorSettings;
  type: FlagType;
  help: string;
}

/** HS256 keys shorter than the hash output are forbidden by RFC 7518 §3.2 (the hub refuses them too). */
const MIN_SECRET_BYTES = 32;

const rate = z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');
const secret = z.string().refine((s) => Buffer.byteLength(s, 'utf8') >= MIN_SECRET_BYTES, {
  error: `must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`,
});
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** Which agency API the simulator serves: the reference protocol (contract §5) or Riverty's shape (collections.md §A). */
export const PERSONALITIES = ['reference', 'riverty'] as const;
export type Personality = (typeof PERSONALITIES)[number];

/** An OAuth2 client secret worth the name; the hub's config takes it from the environment. */
const MIN_CLIENT_SECRET_LENGTH = 16;

export const settingsSchema = z
  .object({
    personality: z.enum(PERSONALITIES, { error: 'must be reference or riverty' }).default('reference'),
    port: z.number().int().min(0).max(65535).default(4010),
    host: z.string().min(1).default('127.0.0.1'),
    partnerId: z.string().min(1).default('refagency'),
    hubId: z.string().min(1).default('collection-hub'),
    hubUrl: httpUrl.optional(),
    inSecret: secret.optional(),
    hubJwksUrl: httpUrl.optional(),
    outSecret: secret.optional(),
    seed: z.number().int().default(1),
    scenarioMix: z
      .string()
      .default(DEFAULT_SCENARIO_MIX)
      .superRefine((mix, ctx) => {
        try {
          parseScenarioMix(mix);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
    stepMs: z.number().int().nonnegative().default(2000),
    errorRate: rate.default(0),
    latencyMs: z.number().int().nonnegative().default(0),
    timeoutRate: rate.default(0),
    timeoutMs: z.number().int().positive().default(30_000),
    duplicateRate: rate.default(0),
    outOfOrder: z.boolean().default(false),
    pushBatch: z.number().int().positive().default(10),
    pushAttempts: z.number().int().positive().default(5),
    pushBackoffMs: z.number().int().nonnegative().default(500),
    pushTimeoutMs: z.number().int().positive().default(10_000),
    clientId: z.string().min(1).default('collection-hub'),
    clientSecret: z.string().min(MIN_CLIENT_SECRET_LENGTH, `must be at least ${MIN_CLIENT_SECRET_LENGTH} characters`).optional(),
    tokenTtlSeconds: z.number().positive().max(86_400).default(300),
  })
  .superRefine((s, ctx) => {
    if (s.personality === 'riverty') {
      // The hub authenticates with OAuth2 client credentials here, and Riverty never pushes.
      if (!s.clientSecret) {
        ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: "the riverty personality needs the hub's OAuth2 client secret" });
      }
      if (s.hubUrl) {
        ctx.addIssue({ code: 'custom', path: ['hubUrl'], message: 'the riverty personality does not push (Riverty has no push; the hub pulls the transaction feed): leave it out' });
      }
      return;
    }
    if (!s.inSecret && !s.hubJwksUrl) {
      ctx.addIssue({
        code: 'custom',
        path: ['inSecret'],
        message: 'the hub cannot be authenticated: give --in-secret (HS256) and/or --hub-jwks-url (RS256/ES256)',
      });
    }
    if (s.hubUrl && !s.outSecret) {
      ctx.addIssue({ code: 'custom', path: ['outSecret'], message: 'pushing to --hub-url needs --out-secret to sign the pushes' });
    }
  });

export type SimulatorSettings = z.output<typeof settingsSchema>;
export type SimulatorSettingsInput = z.input<typeof settingsSchema>;

/** Every CLI flag, in the order `--help` and the README list them. */
export const FLAGS: Record<string, FlagSpec> = {
  personality: { key: 'personality', type: 'string', help: 'which agency API to serve: reference (contract §5) or riverty (OAuth2, transaction feed, no push)' },
  port: { key: 'port', type: 'integer', help: 'port to listen on (0: any free port)' },
  host: { key: 'host', type: 'string', help: 'interface to listen on' },
  'partner-id': { key: 'partnerId', type: 'string', help: "this agency's partner id: the aud of the hub's tokens, the iss of ours" },
  'hub-id': { key: 'hubId', type: 'string', help: "the hub's id: the iss of the hub's tokens, the aud of ours" },
  'hub-url': { key: 'hubUrl', type: 'string', help: 'base URL of the hub to push updates to; absent: pull only' },
  'in-secret': { key: 'inSecret', type: 'string', help: "HS256 secret the hub's tokens are checked with" },
  'hub-jwks-url': { key: 'hubJwksUrl', type: 'string', help: "the hub's JWKS, to check RS256/ES256 tokens (key picked by kid)" },
  'out-secret': { key: 'outSecret', type: 'string', help: 'HS256 secret our pushes are signed with' },
  seed: { key: 'seed', type: 'integer', help: 'seed of the random choices (scenarios, faults)' },
  'scenario-mix': { key: 'scenarioMix', type: 'string', help: 'weights of the scenarios new cases get, e.g. paid:40,arrangement:20' },
  'step-ms': { key: 'stepMs', type: 'integer', help: 'delay between lifecycle steps of a case (0: only POST /_sim/step)' },
  'error-rate': { key: 'errorRate', type: 'number', help: 'fraction (0..1) of mutating /v1 requests answered 503' },
  'latency-ms': { key: 'latencyMs', type: 'integer', help: 'delay added before every /v1 answer' },
  'timeout-rate': { key: 'timeoutRate', type: 'number', help: 'fraction (0..1) of /v1 requests that get no answer' },
  'timeout-ms': { key: 'timeoutMs', type: 'integer', help: 'how long an unanswered request is held before the connection is dropped' },
  'duplicate-rate': { key: 'duplicateRate', type: 'number', help: 'fraction (0..1) of pushes delivered twice' },
  'out-of-order': { key: 'outOfOrder', type: 'boolean', help: 'buffer pushes and send them shuffled in small batches' },
  'push-batch': { key: 'pushBatch', type: 'integer', help: 'most updates in one push' },
  'push-attempts': { key: 'pushAttempts', type: 'integer', help: 'attempts per push before giving up (the pull feed still has it)' },
  'push-backoff-ms': { key: 'pushBackoffMs', type: 'integer', help: 'first retry delay of a failed push; doubles per attempt, with jitter' },
  'push-timeout-ms': { key: 'pushTimeoutMs', type: 'integer', help: 'how long one push waits for the hub' },
  'client-id': { key: 'clientId', type: 'string', help: 'riverty: the OAuth2 client id the token endpoint accepts' },
  'client-secret': { key: 'clientSecret', type: 'string', help: 'riverty: the OAuth2 client secret the token endpoint accepts (required)' },
  'token-ttl-seconds': { key: 'tokenTtlSeconds', type: 'number', help: 'riverty: lifetime of an issued access token (expires_in); expired tokens get 401' },
};

/** `hub-jwks-url` → `AGENCY_SIM_HUB_JWKS_URL`. */
export function envName(flag: string): string {
  return `AGENCY_SIM_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function convert(flag: string, type: FlagType, raw: string | boolean, from: string): unknown {
  if (type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
    throw new Error(`${from}: "${raw}" is not a boolean (true/false)`);
  }
  const text = String(raw);
  if (type === 'string') return text;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`${from}: "${text}" is not a number`);
  if (type === 'integer' && !Number.isInteger(n)) throw new Error(`${from}: "${text}" is not an integer`);
  return n;
}

export type CliResult = { help: true } | { help: false; settings: SimulatorSettings };

/** Flags win over `AGENCY_SIM_*` variables, which win over the defaults. Throws naming the bad flag. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliResult {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [flag, spec] of Object.entries(FLAGS)) options[flag] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) return { help: true };

  const input: Record<string, unknown> = {};
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const fromCli = values[flag];
    const fromEnv = env[envName(flag)];
    if (fromCli !== undefined) input[spec.key] = convert(flag, spec.type, fromCli, `--${flag}`);
    else if (fromEnv !== undefined) input[spec.key] = convert(flag, spec.type, fromEnv, envName(flag));
  }
  return { help: false, settings: resolveSettings(input as SimulatorSettingsInput) };
}

/** Defaults applied and everything checked; the error names flags the way the user typed them. */
export function resolveSettings(input: SimulatorSettingsInput): SimulatorSettings {
  const parsed = settingsSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const flagOf = (key: string): string => {
    const entry = Object.entries(FLAGS).find(([, spec]) => spec.key === key);
    return entry ? `--${entry[0]}` : key;
  };
  const problems = describeBodyError(parsed.error).issues.map((i) => `${flagOf(i.path)}: ${i.message}`);
  throw new Error(`agency simulator: bad settings: ${problems.join('; ')}`);
}

export function usage(): string {
  const lines = Object.entries(FLAGS).map(([flag, spec]) => {
    const value = spec.type === 'boolean' ? '' : ` <${spec.type === 'string' ? 'value' : spec.type}>`;
    return `  --${flag}${value}`.padEnd(34) + `${spec.help}  [env ${envName(flag)}]`;
  });
  return ['Usage: npm run agency-sim -- [flags]', '', ...lines, '  --help'.padEnd(34) + 'this text'].join('\n');
}
