/**
 * Screening a sign-up (issue 17, requirement 3):
 *
 *   POST /v1/screening   { email?, merchantRef?, iban?, cardFingerprint? }   (at least one)
 *
 * Does THIS merchant have a history with the person behind these identifiers? The identifiers are
 * normalised and hashed with the hub's secret and the merchant's id (src/screening/identifiers.ts),
 * and matched against the hashes the hub stored as it learned each customer's identifiers from
 * the PSPs' events (src/screening/store.ts). The answer names the merchant's matching debtors, the
 * customers (PSP identities) that matched and by which kind of identifier, and each debtor's
 * explainable flags (src/profile/profile.ts). Another merchant's customers can never match: only
 * this merchant's rows are read, and the merchant id is part of every hash.
 *
 * 200 with the answer (also when nothing matched: `match: false`); 400 with what is wrong (not a
 * JSON object, no identifier, an unknown field, an e-mail or IBAN that is not one). Every call —
 * answered or refused — is in the sync log, with masked identifiers and hash prefixes, never the
 * identifiers themselves. Tenant-scoped and rate-limited like the rest of the merchant API.
 */
import express, { type Request, type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import { recordExchanges } from '../exchanges/exchange-log';
import { identifierProblem, maskIdentifier, normaliseIdentifier, type Identifier, type IdentifierKind } from '../screening/identifiers';
import { findHashMatches } from '../screening/store';
import { loadDebtorProfile, type ProfileFlag } from '../profile/profile';
import { merchantAuthOptions, requireMerchant } from './merchant-auth';
import { HttpError } from './errors';

export interface ScreeningApiOptions {
  perMerchantLimit?: RequestHandler;
}

export const SCREENING_OPERATION = 'POST /v1/screening';

/** The request's fields and the identifier kind each one is. */
export const SCREENING_FIELDS: Readonly<Record<string, IdentifierKind>> = {
  email: 'email',
  merchantRef: 'merchant_ref',
  iban: 'iban',
  cardFingerprint: 'card_fingerprint',
};
const FIELD_OF: Record<IdentifierKind, string> = { email: 'email', merchant_ref: 'merchantRef', iban: 'iban', card_fingerprint: 'cardFingerprint' };
const FIELD_LIST = 'email, merchantRef, iban or cardFingerprint';

/** One field: absent or null is "not given"; a value is normalised, or refused saying why (never echoing it). */
function identifierField(name: string, kind: IdentifierKind) {
  return z
    .string({ error: `${name} must be a string` })
    .transform((raw, ctx) => {
      const problem = identifierProblem(kind, raw);
      if (problem) {
        ctx.addIssue({ code: 'custom', message: `${name} ${problem}` });
        return z.NEVER;
      }
      return normaliseIdentifier(kind, raw)!;
    })
    .nullish();
}

const screeningBody = z
  .strictObject(Object.fromEntries(Object.entries(SCREENING_FIELDS).map(([name, kind]) => [name, identifierField(name, kind)])) as Record<string, ReturnType<typeof identifierField>>)
  .refine((b) => Object.values(b).some((v) => typeof v === 'string'), { message: `at least one identifier is required: ${FIELD_LIST}` });

/** The request's identifiers, normalised; an HttpError 400 saying what is wrong otherwise. */
export function parseScreeningRequest(body: unknown): Identifier[] {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'bad_request', `send a JSON object with at least one of ${FIELD_LIST}, with Content-Type: application/json`);
  }
  const parsed = screeningBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.slice(0, 3).map((k) => (k.length > 40 ? `${k.slice(0, 40)}…` : k));
      throw new HttpError(400, 'bad_request', `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys.join(', ')}${issue.keys.length > 3 ? ', …' : ''}: screening takes ${FIELD_LIST.replace(' or ', ' and ')}`);
    }
    throw new HttpError(400, 'bad_request', issue.message);
  }
  const out: Identifier[] = [];
  for (const [name, kind] of Object.entries(SCREENING_FIELDS)) {
    const value = parsed.data[name];
    if (typeof value === 'string') out.push({ kind, value });
  }
  return out;
}

export interface ScreenedCustomer {
  id: string;
  provider: string;
  ref: string;
  matchedBy: IdentifierKind[];
}

export interface ScreenedDebtor {
  id: string;
  matchedBy: IdentifierKind[];
  customers: ScreenedCustomer[];
  flags: ProfileFlag[];
}

export interface ScreeningAnswer {
  match: boolean;
  screenedAt: string;
  /** What was screened, masked, and whether it matched anyone. */
  identifiers: { field: string; kind: IdentifierKind; masked: string; matched: boolean }[];
  debtors: ScreenedDebtor[];
}

/** Inside the caller's transaction: match the hashes, load each matched debtor's flags, log the call. */
export async function screen(ctx: HubContext, sql: Sql, merchantId: string, ids: Identifier[], now: Date): Promise<ScreeningAnswer> {
  const merchant = ctx.merchants.get(merchantId);
  if (!merchant) throw new HttpError(404, 'not_found', `merchant ${merchantId} not found`);
  const hashed = ids.map((i) => ({ ...i, hash: ctx.identifiers.hash(merchantId, i) }));
  const matches = await findHashMatches(sql, merchantId, hashed.map(({ kind, hash }) => ({ kind, hash })));

  const debtors = new Map<string, ScreenedDebtor>();
  for (const m of matches) {
    const d = debtors.get(m.debtorId) ?? { id: m.debtorId, matchedBy: [], customers: [], flags: [] };
    debtors.set(m.debtorId, d);
    if (!d.matchedBy.includes(m.kind)) d.matchedBy.push(m.kind);
    let c = d.customers.find((x) => x.id === m.customerId);
    if (!c) d.customers.push((c = { id: m.customerId, provider: m.provider, ref: m.providerRef, matchedBy: [] }));
    if (!c.matchedBy.includes(m.kind)) c.matchedBy.push(m.kind);
  }
  for (const d of debtors.values()) d.flags = (await loadDebtorProfile(sql, merchant, d.id, now)).flags;

  const matchedKinds = new Set(matches.map((m) => `${m.kind}:${m.hash}`));
  const answer: ScreeningAnswer = {
    match: debtors.size > 0,
    screenedAt: now.toISOString(),
    identifiers: hashed.map((h) => ({ field: FIELD_OF[h.kind], kind: h.kind, masked: maskIdentifier(h), matched: matchedKinds.has(`${h.kind}:${h.hash}`) })),
    debtors: [...debtors.values()],
  };

  const customers = answer.debtors.flatMap((d) => d.customers);
  const by = (kinds: IdentifierKind[]) => kinds.join(', ');
  await recordExchanges(sql, [{
    merchantId, direction: 'in', party: 'merchant', operation: SCREENING_OPERATION, outcome: 'ok', httpStatus: 200, at: now,
    // One customer matched: the entry is on its timeline in the sync log, and its erasure purges the bodies.
    customerId: customers.length === 1 ? customers[0].id : null,
    summary: answer.match
      ? `screening by ${by(ids.map((i) => i.kind))}: ${answer.debtors.length} debtor${answer.debtors.length > 1 ? 's' : ''} matched (${answer.debtors.map((d) => `${d.id} by ${by(d.matchedBy)}`).join('; ')})`
      : `screening by ${by(ids.map((i) => i.kind))}: no match`,
    // Masked identifiers and the first 16 hex digits of their hashes: two screenings of the same person can be told apart from others, the person cannot be read back.
    request: { identifiers: hashed.map((h) => ({ kind: h.kind, masked: maskIdentifier(h), hash: h.hash.slice(0, 16) })) },
    response: {
      match: answer.match,
      debtors: answer.debtors.map((d) => ({ id: d.id, matchedBy: d.matchedBy, customers: d.customers.map((c) => c.id), flagsOn: d.flags.filter((f) => f.on).map((f) => f.name) })),
    },
  }]);
  return answer;
}

export function screeningApiRouter(ctx: HubContext, opts: ScreeningApiOptions = {}): Router {
  const router = express.Router();
  const auth = requireMerchant(merchantAuthOptions(ctx));
  const noLimit: RequestHandler = (_req, _res, next) => next();
  const json = express.json({ limit: '16kb' });

  /** A refused call is in the sync log too: what was wrong, never what was sent. */
  const logRefusal = (req: Request, status: number, message: string) =>
    ctx.db.tx((sql) => recordExchanges(sql, [{
      merchantId: req.merchantId!, direction: 'in', party: 'merchant', operation: SCREENING_OPERATION, outcome: 'rejected', httpStatus: status,
      summary: `screening refused: ${message}`, at: ctx.clock.now(),
    }])).catch((err) => ctx.logger.warn('could not log a refused screening call', { merchantId: req.merchantId, error: (err as Error).message }));

  // The body parser's own refusals (not JSON, too large) are logged as refusals before the error handler answers them.
  const parseBody: RequestHandler = (req, res, next) => {
    json(req, res, (err?: unknown) => {
      if (!err) return next();
      const e = err as { status?: number; type?: string };
      const status = typeof e.status === 'number' ? e.status : 400;
      const why = e.type === 'entity.parse.failed' ? 'request body is not valid JSON' : e.type === 'entity.too.large' ? 'request body is larger than the limit' : 'request body could not be read';
      void logRefusal(req, status, why).then(() => next(err));
    });
  };

  router.post('/v1/screening', auth, opts.perMerchantLimit ?? noLimit, parseBody, async (req, res) => {
    const merchantId = req.merchantId!;
    let ids: Identifier[];
    try {
      ids = parseScreeningRequest(req.body);
    } catch (err) {
      if (err instanceof HttpError) await logRefusal(req, err.status, err.message);
      throw err;
    }
    const now = ctx.clock.now();
    const answer = await ctx.commit((sql) => screen(ctx, sql, merchantId, ids, now));
    ctx.logger.info('screening', { merchantId, kinds: ids.map((i) => i.kind), match: answer.match, debtors: answer.debtors.map((d) => d.id) });
    res.status(200).json(answer);
  });
  return router;
}
