/**
 * The riverty personality of the agency simulator: the Riverty-shaped API (modelled on Riverty
 * Back in Flow, collections.md §A) over the same case book and lifecycle as the reference one.
 *
 *  - `POST /oauth/token`: OAuth2 client credentials (form body or HTTP Basic), opaque tokens with a
 *    short configurable lifetime; an expired, revoked or unknown token gets 401 on `/v1`.
 *  - `POST /v1/claims` (→ 202 `{ requestId }`), `GET /v1/requests/:requestId`, `GET /v1/claims/:n`,
 *    `POST /v1/claims/:n/invoices|payments|recalls|hold|resume`, amounts as decimal strings.
 *  - `GET /v1/transactions?fromSortNumber=&limit=` (or the documented `from`/`to` period, with an
 *    optional `type`): every canonical update of the case book as a Riverty transaction, `sortNumber`
 *    0, 1, 2…. A transaction can be withheld (numbered now, listed later) to play a late commit.
 *  - no push, ever.
 */
import crypto from 'node:crypto';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { minorToDecimal } from '../../src/domain/money';
import type { AgencyUpdate } from '../../src/domain/types';
import { BookError, openAmount, type CaseBook, type SimCase } from './case-book';
import { errorReply, parseBody, type Reply } from './replies';
import {
  caseIdOf,
  claimWords,
  invoiceView,
  positiveMinor,
  rivertyAddInvoicesSchema,
  rivertyClaimSchema,
  rivertyIds,
  rivertyPauseSchema,
  rivertyPaymentSchema,
  rivertyRecallSchema,
  rivertyWords,
  toCaseInput,
  toClaimInput,
  toTransaction,
  type RivertyTransaction,
} from './riverty-vocabulary';

// ---- tokens -------------------------------------------------------------------------------------

export interface TokenLogEntry {
  /** 1, 2, 3… in the order issued. */
  number: number;
  clientId: string;
  issuedAt: string;
  expiresAt: string;
  revoked: boolean;
}

interface IssuedToken extends TokenLogEntry {
  value: string;
  expiresAtMs: number;
}

export type TokenCheck = { ok: true; token: IssuedToken } | { ok: false; why: 'missing' | 'unknown' | 'expired' | 'revoked' };

/** Opaque bearer tokens: random, looked up on each call, valid for `ttlSeconds`. */
export class TokenIssuer {
  private readonly byValue = new Map<string, IssuedToken>();
  private readonly issued: IssuedToken[] = [];

  constructor(
    private readonly ttlSeconds: number,
    private readonly now: () => Date,
  ) {}

  issue(clientId: string): { access_token: string; token_type: 'Bearer'; expires_in: number } {
    const at = this.now();
    const token: IssuedToken = {
      number: this.issued.length + 1,
      value: crypto.randomBytes(24).toString('base64url'),
      clientId,
      issuedAt: at.toISOString(),
      expiresAtMs: at.getTime() + this.ttlSeconds * 1000,
      expiresAt: new Date(at.getTime() + this.ttlSeconds * 1000).toISOString(),
      revoked: false,
    };
    this.issued.push(token);
    this.byValue.set(token.value, token);
    return { access_token: token.value, token_type: 'Bearer', expires_in: this.ttlSeconds };
  }

  check(authorization: string | undefined): TokenCheck {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return { ok: false, why: 'missing' };
    const token = this.byValue.get(m[1]);
    if (!token) return { ok: false, why: 'unknown' };
    if (token.revoked) return { ok: false, why: 'revoked' };
    if (this.now().getTime() >= token.expiresAtMs) return { ok: false, why: 'expired' };
    return { ok: true, token };
  }

  /** Every token issued so far stops working (a key rotation at the identity server). */
  revokeAll(): number {
    const now = this.now().getTime();
    let live = 0;
    for (const t of this.issued) {
      if (!t.revoked && now < t.expiresAtMs) live++;
      t.revoked = true;
    }
    return live;
  }

  /** What was issued, without the token values. */
  log(): TokenLogEntry[] {
    return this.issued.map(({ number, clientId, issuedAt, expiresAt, revoked }) => ({ number, clientId, issuedAt, expiresAt, revoked }));
  }
}

// ---- the transaction feed -----------------------------------------------------------------------

export interface FeedEntry extends RivertyTransaction {
  /** Numbered but not listed yet (a transaction committed late). */
  withheld?: boolean;
}

const TYPE_FILTERS: Record<string, RivertyTransaction['type']> = {
  rejection: 'REJECTION',
  accountingDocument: 'ACCOUNTING_DOCUMENT',
  confirmation: 'CONFIRMATION',
  status: 'STATUS',
  closing: 'CLOSING',
};

export class TransactionFeed {
  private readonly entries: FeedEntry[] = [];
  private withholding = false;

  append(u: AgencyUpdate, c: Pick<SimCase, 'id' | 'reference'>): FeedEntry {
    const t: FeedEntry = toTransaction(u, c, this.entries.length);
    if (this.withholding) t.withheld = true;
    this.entries.push(t);
    return t;
  }

  /** Run `fn`; every transaction it makes is numbered now but listed only after `release()`. */
  withhold<T>(fn: () => T): T {
    this.withholding = true;
    try {
      return fn();
    } finally {
      this.withholding = false;
    }
  }

  release(): number {
    let n = 0;
    for (const t of this.entries) {
      if (t.withheld) {
        delete t.withheld;
        n++;
      }
    }
    return n;
  }

  all(): FeedEntry[] {
    return this.entries.map((t) => ({ ...t }));
  }

  /** Listed transactions, ascending sortNumber: from a sortNumber or within a [from, to) period, optionally of one type. */
  page(q: { fromSortNumber?: number; from?: number; to?: number; type?: RivertyTransaction['type']; limit: number }): RivertyTransaction[] {
    const out: RivertyTransaction[] = [];
    for (const t of this.entries.slice(q.fromSortNumber ?? 0)) {
      if (out.length >= q.limit) break;
      if (t.withheld) continue;
      const at = Date.parse(t.createdAt);
      if (q.from !== undefined && at < q.from) continue;
      if (q.to !== undefined && at >= q.to) continue;
      if (q.type && t.type !== q.type) continue;
      out.push({ ...t });
    }
    return out;
  }
}

// ---- routes -------------------------------------------------------------------------------------

export interface RivertyApiDeps {
  book: CaseBook;
  feed: TransactionFeed;
  tokens: TokenIssuer;
  clientId: string;
  clientSecret: string;
  /** Shared with the reference personality: request log, faults, idempotency, answers. */
  recordRequest: RequestHandler;
  injectFaults: RequestHandler;
  mutating(handler: (req: Request) => Reply, opts?: { keyRequired?: boolean }): RequestHandler;
  reading(handler: (req: Request) => Reply): RequestHandler;
  send(res: Response, reply: Reply): void;
  noteAuthError(res: Response, code: string): void;
  schedule(c: SimCase): void;
  unschedule(c: SimCase): void;
}

const MAX_PAGE_LIMIT = 1000;
const DEFAULT_PAGE_LIMIT = 100;

function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

/** RFC 6749 §2.3.1 client credentials from the Basic header or the form body (not both). */
function clientCredentials(req: Request): { id?: string; secret?: string; basic: boolean } {
  const auth = req.get('authorization');
  const m = auth ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(auth) : null;
  if (m) {
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const dec = (s: string) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
      } catch {
        return s;
      }
    };
    return colon < 0 ? { basic: true } : { id: dec(decoded.slice(0, colon)), secret: dec(decoded.slice(colon + 1)), basic: true };
  }
  const body = (req.body ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { id: str(body.client_id), secret: str(body.client_secret), basic: false };
}

export function createRivertyApi(deps: RivertyApiDeps): { token: express.Router; v1: express.Router; caseOf(ref: string): SimCase } {
  const { book, feed, tokens } = deps;
  const paymentsSeen = new Map<string, Reply>();

  /** A request id, claim number or case id → the case; 404 in Riverty's words otherwise. */
  function caseOf(ref: string): SimCase {
    const id = caseIdOf(ref);
    if (!id) throw new BookError(404, 'claim_not_found', `no claim "${ref}"`);
    try {
      return book.get(id);
    } catch (err) {
      if (err instanceof BookError && err.status === 404) throw new BookError(404, 'claim_not_found', `no claim "${ref}"`);
      throw err;
    }
  }

  function claimView(c: SimCase) {
    const ids = rivertyIds(c.id);
    const words = claimWords(c);
    return {
      claimNumber: ids.claimNumber,
      requestId: ids.requestId,
      contractNumber: c.reference,
      customerNumber: c.debtor.reference,
      status: words.status,
      ...(words.closingType ? { closingType: words.closingType } : {}),
      collectedAmount: minorToDecimal(c.claims.reduce((s, k) => s + k.collected, 0), c.currency),
      currency: c.currency,
      invoices: c.claims.map((k) => invoiceView(k, openAmount(k))),
    };
  }

  // ---- POST /oauth/token ----------------------------------------------------------------------

  const token = express.Router();
  token.use(deps.recordRequest, deps.injectFaults, express.urlencoded({ extended: false, limit: '16kb' }));
  token.post('/', (req, res) => {
    const oauthError = (status: number, error: string, description: string, headers: Record<string, string> = {}) => {
      deps.noteAuthError(res, error);
      // RFC 6749 §5.2: the error object at the top, and never cached.
      deps.send(res, { status, body: { error, error_description: description }, headers: { 'Cache-Control': 'no-store', Pragma: 'no-cache', ...headers } });
    };
    const grant = (req.body as Record<string, unknown> | undefined)?.grant_type;
    if (grant !== 'client_credentials') {
      oauthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
      return;
    }
    const cred = clientCredentials(req);
    if (!cred.id || !cred.secret) {
      oauthError(401, 'invalid_client', 'client authentication is required (client_id and client_secret, or HTTP Basic)', cred.basic ? { 'WWW-Authenticate': 'Basic realm="riverty"' } : {});
      return;
    }
    if (!safeEqual(cred.id, deps.clientId) || !safeEqual(cred.secret, deps.clientSecret)) {
      oauthError(401, 'invalid_client', 'unknown client or wrong secret', cred.basic ? { 'WWW-Authenticate': 'Basic realm="riverty"' } : {});
      return;
    }
    deps.send(res, { status: 200, body: tokens.issue(cred.id), headers: { 'Cache-Control': 'no-store', Pragma: 'no-cache' } });
  });

  // ---- /v1 ------------------------------------------------------------------------------------

  const authenticate: RequestHandler = (req, res, next) => {
    const check = tokens.check(req.get('authorization'));
    if (check.ok) {
      next();
      return;
    }
    const message = {
      missing: 'an access token is required: Authorization: Bearer <token> from POST /oauth/token',
      unknown: 'the access token is not one we issued',
      expired: 'the access token expired',
      revoked: 'the access token was revoked',
    }[check.why];
    const code = check.why === 'missing' ? 'missing_token' : check.why === 'expired' ? 'token_expired' : 'invalid_token';
    deps.noteAuthError(res, code);
    deps.send(res, {
      ...errorReply(401, code, message),
      headers: { 'WWW-Authenticate': check.why === 'missing' ? 'Bearer realm="riverty"' : `Bearer error="invalid_token", error_description="${message}"` },
    });
  };

  const v1 = express.Router();
  v1.use(deps.recordRequest, deps.injectFaults, authenticate, express.json({ limit: '1mb' }));
  const param = (req: Request, name: string): string => String(req.params[name]);
  // Riverty documents no Idempotency-Key; one is honoured when sent (the hub sends it), not required.
  const mutating = (handler: (req: Request) => Reply) => deps.mutating(handler, { keyRequired: false });

  v1.post(
    '/claims',
    mutating((req) => {
      const body = parseBody(rivertyClaimSchema, req.body);
      const input = toCaseInput(body);
      const existing = book.all().find((c) => c.reference === input.reference);
      if (existing) {
        throw new BookError(409, 'duplicate_claim', `a claim for contract "${input.reference}" was handed over already: request ${rivertyIds(existing.id).requestId}`, {
          top: { requestId: rivertyIds(existing.id).requestId },
        });
      }
      const c = book.createCase(input);
      deps.schedule(c);
      // Riverty processes hand-overs asynchronously: the claim number is in the feed (and here, at once, in /v1/requests).
      return { status: 202, body: { requestId: rivertyIds(c.id).requestId } };
    }),
  );

  v1.get(
    '/requests/:requestId',
    deps.reading((req) => {
      const ref = param(req, 'requestId');
      const c = caseOf(ref);
      const ids = rivertyIds(c.id);
      if (ids.requestId !== ref) throw new BookError(404, 'request_not_found', `no hand-over request "${ref}"`);
      return { status: 200, body: { requestId: ids.requestId, status: 'PROCESSED', claimNumber: ids.claimNumber, contractNumber: c.reference } };
    }),
  );

  /** The claim a path names by its claim number (a request id is not a claim number). */
  function claimAt(req: Request): SimCase {
    const ref = param(req, 'claimNumber');
    const c = caseOf(ref);
    if (rivertyIds(c.id).claimNumber !== ref) throw new BookError(404, 'claim_not_found', `no claim "${ref}" (paths take the claim number)`);
    return c;
  }

  v1.get('/claims/:claimNumber', deps.reading((req) => ({ status: 200, body: claimView(claimAt(req)) })));

  v1.post(
    '/claims/:claimNumber/invoices',
    mutating((req) => {
      const c = claimAt(req);
      const body = parseBody(rivertyAddInvoicesSchema, req.body);
      if (body.contractNumber && body.contractNumber !== c.reference) {
        throw new BookError(400, 'invalid_body', `contractNumber: claim ${rivertyIds(c.id).claimNumber} holds contract "${c.reference}"`, { detail: { path: 'contractNumber' } });
      }
      const added = body.invoices.map((inv, i) => book.addClaim(c, toClaimInput(inv, `invoices[${i}]`)));
      deps.schedule(c);
      return { status: 201, body: { claimNumber: rivertyIds(c.id).claimNumber, invoices: added.map((k) => ({ invoiceNumber: k.reference, status: rivertyWords(k.status, k.reason).status })) } };
    }),
  );

  v1.post(
    '/claims/:claimNumber/payments',
    mutating((req) => {
      const c = claimAt(req);
      const body = parseBody(rivertyPaymentSchema, req.body);
      // Riverty: "paymentNumber … allows us to ensure that payments sent twice are only processed once".
      const seenKey = `${c.id} ${body.paymentNumber}`;
      const seen = paymentsSeen.get(seenKey);
      if (seen) return seen;
      const value = positiveMinor(body.amount, body.currency, 'amount');
      const paidAt = body.date.length === 10 ? `${body.date}T00:00:00.000Z` : body.date;
      const claim = book.reportPayment(c, body.invoiceNumber, { value, currency: body.currency }, { paidAt, channel: body.description ?? 'paid to the client' });
      if (c.finalized) deps.unschedule(c);
      const reply: Reply = {
        status: 202,
        body: {
          claimNumber: rivertyIds(c.id).claimNumber,
          invoiceNumber: claim.reference,
          paymentNumber: body.paymentNumber,
          status: rivertyWords(claim.status, claim.reason).status,
          remainingAmount: minorToDecimal(openAmount(claim), c.currency),
          currency: c.currency,
        },
      };
      paymentsSeen.set(seenKey, reply);
      return reply;
    }),
  );

  v1.post(
    '/claims/:claimNumber/recalls',
    mutating((req) => {
      const c = claimAt(req);
      const body = parseBody(rivertyRecallSchema, req.body);
      if (!body.invoices) {
        book.withdraw(c, body.comment?.trim() || 'withdrawn_by_merchant');
      } else {
        for (const inv of body.invoices) {
          // A credit waiver is the client crediting the invoice: Riverty closes it COMPLETED_BY_CREDIT.
          const reason = inv.type === 'CREDIT_WAIVER' ? 'credit_note' : body.comment?.trim() || 'withdrawn_by_merchant';
          book.withdraw(c, reason, inv.invoiceNumber);
        }
      }
      if (c.finalized) deps.unschedule(c);
      return { status: 202, body: { claimNumber: rivertyIds(c.id).claimNumber, status: claimWords(c).status } };
    }),
  );

  for (const action of ['hold', 'resume'] as const) {
    v1.post(
      `/claims/:claimNumber/${action}`,
      mutating((req) => {
        const c = claimAt(req);
        const body = parseBody(rivertyPauseSchema, req.body);
        const reason = body.comment?.trim() || (action === 'hold' ? 'on hold at the client’s request' : 'resumed at the client’s request');
        const changed = action === 'hold' ? book.hold(c, reason, body.invoiceNumber) : book.resume(c, reason, body.invoiceNumber);
        if (action === 'resume') deps.schedule(c);
        return { status: 202, body: { claimNumber: rivertyIds(c.id).claimNumber, status: claimWords(c).status, changed } };
      }),
    );
  }

  v1.get(
    '/transactions',
    deps.reading((req) => {
      const q = req.query;
      const bad = (path: string, message: string) => new BookError(400, 'invalid_query', `${path}: ${message}`, { detail: { path } });
      const str = (v: unknown) => (v === undefined ? undefined : String(v));
      const limitText = str(q.limit) ?? String(DEFAULT_PAGE_LIMIT);
      const limit = Number(limitText);
      if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_PAGE_LIMIT) throw bad('limit', `must be an integer from 1 to ${MAX_PAGE_LIMIT}`);
      const fromSortText = str(q.fromSortNumber);
      if (fromSortText !== undefined && !/^\d+$/.test(fromSortText)) throw bad('fromSortNumber', 'must be a sortNumber (0, 1, 2, …)');
      const time = (name: string) => {
        const v = str(q[name]);
        if (v === undefined) return undefined;
        const at = Date.parse(v);
        if (Number.isNaN(at)) throw bad(name, 'must be an ISO 8601 date-time');
        return at;
      };
      const typeText = str(q.type);
      const type =
        typeText === undefined
          ? undefined
          : Object.hasOwn(TYPE_FILTERS, typeText)
            ? TYPE_FILTERS[typeText]
            : Object.values(TYPE_FILTERS).find((t) => t === typeText);
      if (typeText !== undefined && !type) throw bad('type', `must be one of ${Object.keys(TYPE_FILTERS).join(', ')}`);
      const transactions = feed.page({ fromSortNumber: fromSortText === undefined ? undefined : Number(fromSortText), from: time('from'), to: time('to'), type, limit });
      return { status: 200, body: { transactions } };
    }),
  );

  v1.use((req, res) => deps.send(res, errorReply(404, 'not_found', `no route ${req.method} ${req.originalUrl}`)));

  return { token, v1, caseOf };
}
