/**
 * Loads and validates mappings/ at boot: every canonical value a mapping names must exist in
 * src/domain/types.ts, or start-up stops with the file and key named.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { AGENCY_STATUSES, FAILURE_REASONS, PAYMENT_EVENT_KINDS, RESOLUTION_REASONS } from '../domain/types';
import type { AgencyMapping, FailureCodeRule, PspMapping } from './types';

export const MAPPINGS_DIR = path.resolve(__dirname, '../../mappings');

const failureRule = z.object({
  reason: z.enum(FAILURE_REASONS),
  retryable: z.boolean(),
  /** Where the rule comes from (a PSP doc, a scheme rulebook): required, so no rule is unsourced. */
  source: z.string().min(1),
});

const pspFile = z.object({
  provider: z.string().min(1),
  /** Other mapping files whose failure codes this one includes (e.g. `sepa`). */
  include: z.array(z.string()).default([]),
  events: z.record(z.string(), z.enum(PAYMENT_EVENT_KINDS)).default({}),
  failureCodes: z.record(z.string(), failureRule).default({}),
});

/**
 * A shared code file (sepa.yaml) also says what a debit returned with each code means, so every
 * PSP reporting SEPA returns decides alike (connectors/psp/sepa-return.ts): required, so a new
 * code cannot be added without that decision.
 */
const sharedCodesFile = z.object({
  name: z.string(),
  failureCodes: z.record(z.string(), failureRule.extend({ onReturn: z.enum(['collect', 'dispute']) })),
});

const agencyFile = z.object({
  partnerConnector: z.string().min(1),
  statuses: z.record(z.string(), z.enum(AGENCY_STATUSES as [string, ...string[]])),
  reasons: z.record(z.string(), z.enum(RESOLUTION_REASONS)).default({}),
});

export class MappingError extends Error {}

function readYaml(file: string): unknown {
  try {
    return YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MappingError(`${file}: ${(err as Error).message}`);
  }
}

function parse<T>(schema: z.ZodType<T>, file: string): T {
  const result = schema.safeParse(readYaml(file));
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new MappingError(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return result.data;
}

export function loadPspMapping(provider: string, dir = MAPPINGS_DIR): PspMapping {
  const file = path.join(dir, 'psp', `${provider}.yaml`);
  const data = parse(pspFile, file);
  if (data.provider !== provider) throw new MappingError(`${file}: provider is ${data.provider}, expected ${provider}`);
  const failureCodes: Record<string, FailureCodeRule> = {};
  for (const inc of data.include) {
    const shared = parse(sharedCodesFile, path.join(dir, 'psp', `${inc}.yaml`));
    Object.assign(failureCodes, shared.failureCodes);
  }
  // The PSP's own rows win over shared ones.
  Object.assign(failureCodes, data.failureCodes);
  return { provider, events: data.events, failureCodes };
}

export function loadAgencyMapping(connector: string, dir = MAPPINGS_DIR): AgencyMapping {
  const file = path.join(dir, 'agency', `${connector}.yaml`);
  const data = parse(agencyFile, file);
  return data as AgencyMapping;
}

/** Raw failure code → canonical reason; an unmapped code is `unknown`, never a crash (design.md habit 5). */
export function mapFailureCode(mapping: PspMapping, code: string | undefined | null): FailureCodeRule & { code: string } {
  const raw = code ?? 'unknown';
  // Own keys only: a raw code such as `constructor` must not find Object.prototype's.
  const rule = Object.hasOwn(mapping.failureCodes, raw) ? mapping.failureCodes[raw] : undefined;
  return rule ? { ...rule, code: raw } : { code: raw, reason: 'unknown', retryable: false };
}
