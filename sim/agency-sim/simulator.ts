/**
 * A collection agency speaking the reference protocol (contract §5) over real HTTP, for tests,
 * demos and load runs: JWT-checked `/v1/*` calls with idempotency keys, cases that live through
 * a seeded scenario step by step, an update feed to pull and pushes to the hub, and faults on
 * demand. `/_sim/*` (no auth) lets tests look inside and steer. Everything lives in the returned
 * object, so one process can run several simulators side by side.
 *
 * `personality: 'riverty'` serves a Riverty-shaped API instead of `/v1` of the reference protocol
 * (./riverty.ts): OAuth2 tokens, claims, a transaction feed by sortNumber, no push — over the same
 * case book, lifecycle, faults and control endpoints.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { AgencyUpdate, Money } from '../../src/domain/types';
import { BookError, CaseBook, openAmount, type SimCase } from './case-book';
import { IdempotencyStore, MAX_IDEMPOTENCY_KEY_LENGTH, requestFingerprint } from './idempotency';
import { AuthError, createInboundVerifier } from './inbound-auth';
import { resolveSettings, type SimulatorSettings, type SimulatorSettingsInput } from './options';
import { deriveSeed, mulberry32 } from './prng';
import { Pusher, type PushLogEntry } from './pusher';
import { errorReply, parseBody, type Reply } from './replies';
import { createRivertyApi, TokenIssuer, TransactionFeed, type FeedEntry, type TokenLogEntry } from './riverty';
import { isScenario, parseScenarioMix, SCENARIOS, type Scenario } from './scenarios';
import {
  caseSchema,
  claimSchema,
  controlEventSchema,
  faultsSchema,
  pauseSchema,
  paymentSchema,
  withdrawSchema,
  type ControlEvent,
  type Faults,
} from './schemas';

export interface AgencySimulatorOptions extends SimulatorSettingsInput {
  /** The simulator's clock (occurredAt, token times). */
  now?: () => Date;
  /** Where operational messages go; silent by default so tests stay quiet. */
  log?: (message: string) => void;
}

export interface RequestLogEntry {
  at: string;
  method: string;
  path: string;
  idempotencyKey: string | null;
  /** The status answered; null when no answer was sent (timeout fault, client gone). */
  status: number | null;
  /** Fault injected into this request, if any. */
  fault: 'error' | 'timeout' | null;
  /** Answered from the idempotency store. */
  replayed: boolean;
  /** Why auth refused it, when it did. */
  authError?: string;
}

export interface ClaimView {
  reference: string;
  number?: string;
  status: string;
  reason?: string;
  principal: Money;
  /** The claim's statutory costs as the hub sent them (hub extension of contract §5). */
  collectionCosts?: Money & { basis: string };
  amountCollected: Money;
  amountPaidToMerchant: Money;
  amountOpen: Money;
}

export interface CaseView {
  id: string;
  reference: string;
  status: string;
  reason?: string;
  createdAt: string;
  creditor: { id: string; name: string };
  debtor: { reference: string; type: string; name: string };
  amountCollected: Money;
  claims: ClaimView[];
}

export interface SimCaseView extends CaseView {
  collectionCosts?: Money & { basis: string };
  scenario: Scenario;
  finalized: boolean;
  plan?: { installments: number; amounts: number[]; paid: number };
}

export interface AgencySimulator {
  app: express.Express;
  /** Which agency API this simulator serves (`--personality`). */
  readonly personality: SimulatorSettings['personality'];
  start(port?: number, host?: string): Promise<{ port: number; url: string }>;
  stop(): Promise<void>;
  readonly settings: SimulatorSettings;
  /** The base URL once started. */
  readonly url: string | null;
  cases(): SimCaseView[];
  case(id: string): SimCaseView;
  updates(): AgencyUpdate[];
  requests(): RequestLogEntry[];
  pushes(): PushLogEntry[];
  /** Resolves once every update emitted so far has been pushed (or given up on). */
  pushesSettled(): Promise<void>;
  faults(): Faults;
  setFaults(patch: Partial<Faults>): Faults;
  pause(): void;
  resume(): void;
  /** Advance one case, or every open case, by one lifecycle step now; returns how many updates that made. */
  step(caseId?: string): number;
  /**
   * Emit exactly this update on the case now (the control endpoint's function). `caseId` may be a
   * riverty request id or claim number too. riverty: `withhold` numbers its transaction now but
   * lists it only after releaseTransactions() — a transaction committed late.
   */
  emit(caseId: string, event: ControlEvent, opts?: { withhold?: boolean }): AgencyUpdate;
  /** riverty: the transaction feed, withheld ones included (flagged); reference: empty. */
  transactions(): FeedEntry[];
  /** riverty: list every withheld transaction now; returns how many. */
  releaseTransactions(): number;
  /** riverty: the access tokens issued so far (without their values). */
  tokens(): TokenLogEntry[];
  /** riverty: every token issued so far is refused from now on; returns how many were live. */
  revokeTokens(): number;
  /** Pin the scenario of one case, or (caseId null) of every case created from now on (null: back to the mix). */
  setScenario(caseId: string | null, scenario: Scenario | null): void;
}

/** The request log is for looking at recent traffic, not an archive; it keeps this many entries. */
const REQUEST_LOG_LIMIT = 10_000;
const MAX_PAGE_LIMIT = 1000;
const DEFAULT_PAGE_LIMIT = 100;

function money(value: number, currency: string): Money {
  return { value, currency };
}

function caseView(c: SimCase): CaseView {
  return {
    id: c.id,
    reference: c.reference,
    status: c.status,
    ...(c.reason ? { reason: c.reason } : {}),
    createdAt: c.createdAt,
    creditor: c.creditor,
    debtor: { reference: c.debtor.reference, type: c.debtor.type, name: c.debtor.name },
    amountCollected: money(
      c.claims.reduce((sum, k) => sum + k.collected, 0),
      c.currency,
    ),
    claims: c.claims.map((k) => ({
      reference: k.reference,
      ...(k.number ? { number: k.number } : {}),
      status: k.status,
      ...(k.reason ? { reason: k.reason } : {}),
      principal: k.principal,
      ...(k.collectionCosts ? { collectionCosts: k.collectionCosts } : {}),
      amountCollected: money(k.collected, c.currency),
      amountPaidToMerchant: money(k.paidToMerchant, c.currency),
      amountOpen: money(openAmount(k), c.currency),
    })),
  };
}

function simCaseView(c: SimCase): SimCaseView {
  return { ...caseView(c), ...(c.collectionCosts ? { collectionCosts: c.collectionCosts } : {}), scenario: c.scenario, finalized: c.finalized, ...(c.plan ? { plan: { ...c.plan } } : {}) };
}

export function createAgencySimulator(options: AgencySimulatorOptions = {}): AgencySimulator {
  const { now: nowOption, log: logOption, ...settingsInput } = options;
  const settings = resolveSettings(settingsInput);
  const now = nowOption ?? (() => new Date());
  const log = logOption ?? (() => undefined);

  const faults: Faults = {
    errorRate: settings.errorRate,
    latencyMs: settings.latencyMs,
    timeoutRate: settings.timeoutRate,
    timeoutMs: settings.timeoutMs,
    duplicateRate: settings.duplicateRate,
    outOfOrder: settings.outOfOrder,
    pushBatch: settings.pushBatch,
  };
  // Separate streams: turning a fault on must not change which scenario the next case gets.
  const scenarioPrng = mulberry32(deriveSeed(settings.seed, 0));
  const faultPrng = mulberry32(deriveSeed(settings.seed, 1));
  const pushPrng = mulberry32(deriveSeed(settings.seed, 2));

  const pusher = settings.hubUrl
    ? new Pusher({
        hubUrl: settings.hubUrl,
        partnerId: settings.partnerId,
        hubId: settings.hubId,
        outSecret: settings.outSecret!,
        faults: () => faults,
        prng: pushPrng,
        attempts: settings.pushAttempts,
        backoffMs: settings.pushBackoffMs,
        requestTimeoutMs: settings.pushTimeoutMs,
        // About two lifecycle steps' worth of updates get mixed together.
        outOfOrderWindowMs: Math.min(Math.max(settings.stepMs * 2, 20), 5000),
        now,
        log,
      })
    : null;

  const riverty = settings.personality === 'riverty';
  // riverty: every canonical update of the books is also a transaction of Riverty's feed.
  const feed = riverty ? new TransactionFeed() : null;
  const tokenIssuer = riverty ? new TokenIssuer(settings.tokenTtlSeconds, now) : null;
  const book = new CaseBook({
    now,
    prng: scenarioPrng,
    mix: parseScenarioMix(settings.scenarioMix),
    onUpdate: (u) => {
      pusher?.enqueue(u);
      feed?.append(u, { id: u.caseId, reference: u.caseReference });
    },
  });
  // The reference protocol checks the hub's JWT; the riverty personality its own OAuth2 tokens.
  const verify = riverty
    ? null
    : createInboundVerifier({
        partnerId: settings.partnerId,
        hubId: settings.hubId,
        secret: settings.inSecret,
        jwksUrl: settings.hubJwksUrl,
        now,
      });
  const idempotency = new IdempotencyStore();
  const requestLog: RequestLogEntry[] = [];

  // ---- lifecycle timers ---------------------------------------------------------------------

  const stepTimers = new Map<string, NodeJS.Timeout>();
  let paused = false;
  let stopped = false;

  /** Give the case its next step in step-ms, unless it has one coming or nothing can happen. */
  function schedule(c: SimCase): void {
    if (paused || stopped || settings.stepMs === 0 || c.finalized || stepTimers.has(c.id)) return;
    const timer = setTimeout(() => {
      stepTimers.delete(c.id);
      if (book.advance(c)) schedule(c);
    }, settings.stepMs);
    timer.unref();
    stepTimers.set(c.id, timer);
  }

  function unschedule(c: SimCase): void {
    const timer = stepTimers.get(c.id);
    if (timer) clearTimeout(timer);
    stepTimers.delete(c.id);
  }

  function step(caseId?: string): number {
    const before = book.updates().length;
    const targets = caseId ? [caseOf(caseId)] : book.all().filter((c) => !c.finalized);
    for (const c of targets) book.advance(c);
    return book.updates().length - before;
  }

  // ---- unanswered requests (timeout fault) ----------------------------------------------------

  const hanging = new Set<{ timer: NodeJS.Timeout; socket: Socket | null }>();

  /** Never answer: hold the connection, then drop it, as an overloaded agency behind a proxy does. */
  function hang(res: Response): void {
    const held = {
      socket: res.socket,
      timer: setTimeout(() => {
        hanging.delete(held);
        held.socket?.destroy();
      }, faults.timeoutMs),
    };
    held.timer.unref();
    hanging.add(held);
    res.on('close', () => {
      clearTimeout(held.timer);
      hanging.delete(held);
    });
  }

  function send(res: Response, reply: Reply): void {
    if (res.locals.hang) {
      hang(res);
      return;
    }
    if (reply.headers) res.set(reply.headers);
    res.status(reply.status).json(reply.body);
  }

  function logEntry(res: Response): RequestLogEntry | undefined {
    return res.locals.logEntry as RequestLogEntry | undefined;
  }

  // ---- /v1 middleware -----------------------------------------------------------------------

  const recordRequest: RequestHandler = (req, res, next) => {
    const entry: RequestLogEntry = {
      at: now().toISOString(),
      method: req.method,
      path: req.originalUrl,
      idempotencyKey: req.get('idempotency-key') ?? null,
      status: null,
      fault: null,
      replayed: false,
    };
    requestLog.push(entry);
    if (requestLog.length > REQUEST_LOG_LIMIT) requestLog.splice(0, requestLog.length - REQUEST_LOG_LIMIT);
    res.locals.logEntry = entry;
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    next();
  };

  const injectFaults: RequestHandler = async (req, res, next) => {
    if (faults.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, faults.latencyMs).unref());
    // Both rolls are drawn on every request, so the fault stream does not depend on the rates.
    const errorRoll = faultPrng.next();
    const timeoutRoll = faultPrng.next();
    const entry = logEntry(res)!;
    if (req.method !== 'GET' && errorRoll < faults.errorRate) {
      entry.fault = 'error';
      send(res, { ...errorReply(503, 'unavailable', 'the agency is temporarily unavailable (injected fault); retry later'), headers: { 'Retry-After': '1' } });
      return;
    }
    if (timeoutRoll < faults.timeoutRate) {
      // The request is still processed below: a mutating call takes effect but its answer is
      // lost, which is exactly the case Idempotency-Key exists for.
      entry.fault = 'timeout';
      res.locals.hang = true;
    }
    next();
  };

  const authenticate: RequestHandler = async (req, res, next) => {
    try {
      res.locals.token = await verify!(req.get('authorization'));
      next();
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      logEntry(res)!.authError = err.code;
      const headers: Record<string, string> =
        err.status === 401 ? { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${err.code}"` } : { 'Retry-After': '5' };
      send(res, { ...errorReply(err.status, err.code, err.message), headers });
    }
  };

  /**
   * A mutating call: Idempotency-Key required; a repeat of the same request replays the first
   * answer; a different request under a used key is refused. Bad bodies (400) are not kept, so a
   * client may fix the body and retry under the same key.
   */
  function mutating(handler: (req: Request) => Reply, opts: { keyRequired?: boolean } = {}): RequestHandler {
    const keyRequired = opts.keyRequired ?? true;
    return (req, res) => {
      const key = req.get('idempotency-key');
      if (!key && !keyRequired) {
        // An agency that documents no Idempotency-Key (riverty) simply does the work.
        let reply: Reply;
        try {
          reply = handler(req);
        } catch (err) {
          if (!(err instanceof BookError)) throw err;
          reply = errorReply(err.status, err.code, err.message, err.extra.detail, err.extra.top);
        }
        send(res, reply);
        return;
      }
      if (!key) {
        send(res, errorReply(400, 'missing_idempotency_key', 'the Idempotency-Key header is required on every mutating call'));
        return;
      }
      if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
        send(res, errorReply(400, 'invalid_idempotency_key', `Idempotency-Key is longer than ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`));
        return;
      }
      const fingerprint = requestFingerprint(req.method, req.originalUrl.split('?')[0], req.body);
      const stored = idempotency.get(key);
      if (stored) {
        if (stored.fingerprint !== fingerprint) {
          send(
            res,
            errorReply(
              422,
              'idempotency_key_reused',
              `Idempotency-Key "${key}" was already used for a different request (another body or endpoint); a new request needs a new key`,
            ),
          );
          return;
        }
        logEntry(res)!.replayed = true;
        send(res, { status: stored.status, body: stored.body, headers: { 'Idempotent-Replayed': 'true' } });
        return;
      }
      let reply: Reply;
      try {
        reply = handler(req);
      } catch (err) {
        if (!(err instanceof BookError)) throw err;
        reply = errorReply(err.status, err.code, err.message, err.extra.detail, err.extra.top);
      }
      if (reply.status !== 400) idempotency.put(key, { status: reply.status, body: reply.body, fingerprint });
      send(res, reply);
    };
  }

  /** A read: BookErrors become their answer. */
  function reading(handler: (req: Request) => Reply): RequestHandler {
    return (req, res) => {
      try {
        send(res, handler(req));
      } catch (err) {
        if (!(err instanceof BookError)) throw err;
        send(res, errorReply(err.status, err.code, err.message, err.extra.detail, err.extra.top));
      }
    };
  }

  const param = (req: Request, name: string): string => String(req.params[name]);

  // ---- /v1 routes (contract §5) ---------------------------------------------------------------

  const v1 = express.Router();
  v1.use(recordRequest, injectFaults, authenticate, express.json({ limit: '1mb' }));

  v1.post(
    '/cases',
    mutating((req) => {
      const c = book.createCase(parseBody(caseSchema, req.body));
      schedule(c);
      return { status: 201, body: { id: c.id, status: c.status, reference: c.reference } };
    }),
  );

  v1.post(
    '/cases/:id/claims',
    mutating((req) => {
      const c = book.get(param(req, 'id'));
      const claim = book.addClaim(c, parseBody(claimSchema, req.body));
      schedule(c);
      return { status: 201, body: { caseId: c.id, reference: claim.reference, status: claim.status } };
    }),
  );

  v1.post(
    '/cases/:id/claims/:reference/payments',
    mutating((req) => {
      const c = book.get(param(req, 'id'));
      const payment = parseBody(paymentSchema, req.body);
      const claim = book.reportPayment(c, param(req, 'reference'), payment.amount, payment);
      if (c.finalized) unschedule(c);
      return {
        status: 202,
        body: { caseId: c.id, claimReference: claim.reference, status: claim.status, amountOpen: money(openAmount(claim), c.currency) },
      };
    }),
  );

  v1.post(
    '/cases/:id/withdraw',
    mutating((req) => {
      const c = book.get(param(req, 'id'));
      const body = parseBody(withdrawSchema, req.body);
      book.withdraw(c, body.reason, body.claimReference);
      if (c.finalized) unschedule(c);
      const claim = body.claimReference ? { claimReference: body.claimReference, claimStatus: 'withdrawn' } : {};
      return { status: 202, body: { id: c.id, status: c.status, ...claim } };
    }),
  );

  for (const action of ['hold', 'resume'] as const) {
    // Extension of §5, like withdraw's claimReference: the case, or one claim, waits / goes on.
    v1.post(
      `/cases/:id/${action}`,
      mutating((req) => {
        const c = book.get(param(req, 'id'));
        const body = parseBody(pauseSchema, req.body);
        const changed = action === 'hold' ? book.hold(c, body.reason, body.claimReference) : book.resume(c, body.reason, body.claimReference);
        if (action === 'resume') schedule(c);
        const claim = body.claimReference ? { claimReference: body.claimReference, claimStatus: c.claims.find((k) => k.reference === body.claimReference)!.status } : {};
        return { status: 202, body: { id: c.id, status: c.status, ...claim, changed } };
      }),
    );
  }

  v1.get(
    '/cases/:id',
    reading((req) => ({ status: 200, body: caseView(book.get(param(req, 'id'))) })),
  );

  v1.get(
    '/updates',
    reading((req) => {
      const after = req.query.after === undefined || req.query.after === '' ? '0' : String(req.query.after);
      if (!/^\d+$/.test(after)) throw new BookError(400, 'invalid_cursor', `after: "${after}" is not a cursor from this feed`, { detail: { path: 'after' } });
      const limitText = req.query.limit === undefined ? String(DEFAULT_PAGE_LIMIT) : String(req.query.limit);
      const limit = Number(limitText);
      if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_PAGE_LIMIT) {
        throw new BookError(400, 'invalid_limit', `limit: must be an integer from 1 to ${MAX_PAGE_LIMIT}`, { detail: { path: 'limit' } });
      }
      return { status: 200, body: book.page(Number(after), limit) };
    }),
  );

  v1.use((req, res) => send(res, errorReply(404, 'not_found', `no route ${req.method} ${req.originalUrl}`)));
  const v1Errors = (err: Error & { type?: string; status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') {
      send(res, errorReply(400, 'invalid_json', 'the body is not valid JSON'));
    } else if (err.type === 'entity.too.large') {
      send(res, errorReply(413, 'body_too_large', 'the body is larger than 1 MB'));
    } else {
      log(`internal error on ${_req.method} ${_req.originalUrl}: ${err.stack ?? err.message}`);
      send(res, errorReply(500, 'internal', 'internal error in the agency simulator'));
    }
  };
  v1.use(v1Errors);

  // ---- the riverty personality (sim/agency-sim/riverty.ts) ----------------------------------

  const rivertyApi = riverty
    ? createRivertyApi({
        book,
        feed: feed!,
        tokens: tokenIssuer!,
        clientId: settings.clientId,
        clientSecret: settings.clientSecret!,
        recordRequest,
        injectFaults,
        mutating,
        reading,
        send,
        noteAuthError: (res, code) => {
          const entry = logEntry(res);
          if (entry) entry.authError = code;
        },
        schedule,
        unschedule,
      })
    : null;
  rivertyApi?.v1.use(v1Errors);
  rivertyApi?.token.use(v1Errors);

  /** A case id, or (riverty) a request id or claim number, → the case book's case. */
  function caseOf(ref: string): SimCase {
    return rivertyApi ? rivertyApi.caseOf(ref) : book.get(ref);
  }

  // ---- /_sim control routes (no auth: tests and demos only) --------------------------------

  function setFaults(patch: Partial<Faults>): Faults {
    Object.assign(faults, parseBody(faultsSchema.partial(), patch));
    return { ...faults };
  }

  function setScenario(caseId: string | null, scenario: Scenario | null): void {
    if (caseId === null) {
      book.forcedScenario = scenario;
      return;
    }
    if (scenario === null) throw new BookError(400, 'invalid_body', 'scenario: a case needs a scenario', { detail: { path: 'scenario' } });
    const c = caseOf(caseId);
    c.scenario = scenario;
    c.plan = undefined;
    schedule(c);
  }

  function emit(caseId: string, event: ControlEvent, opts: { withhold?: boolean } = {}): AgencyUpdate {
    const c = caseOf(caseId);
    if (opts.withhold && !feed) {
      throw new BookError(400, 'invalid_body', 'withhold: only the riverty personality has a transaction feed to withhold from', { detail: { path: 'withhold' } });
    }
    const update = opts.withhold ? feed!.withhold(() => book.force(c, event)) : book.force(c, event);
    if (c.finalized) unschedule(c);
    else schedule(c);
    return update;
  }

  function pause(): void {
    paused = true;
    for (const timer of stepTimers.values()) clearTimeout(timer);
    stepTimers.clear();
  }

  function resume(): void {
    paused = false;
    for (const c of book.all()) schedule(c);
  }

  const control = express.Router();
  control.use(express.json({ limit: '1mb' }));
  const scenarioOf = (body: unknown, nullable: boolean): Scenario | null => {
    const value = (body as { scenario?: unknown } | undefined)?.scenario;
    if (nullable && value === null) return null;
    if (typeof value === 'string' && isScenario(value)) return value;
    throw new BookError(400, 'invalid_body', `scenario: must be one of ${SCENARIOS.join(', ')}${nullable ? ' or null' : ''}`, {
      detail: { path: 'scenario' },
    });
  };

  control.get('/cases', reading(() => ({ status: 200, body: { cases: book.all().map(simCaseView) } })));
  control.get('/cases/:id', reading((req) => ({ status: 200, body: simCaseView(caseOf(param(req, 'id'))) })));
  control.post(
    '/cases/:id/events',
    reading((req) => {
      const withhold = (req.body as { withhold?: unknown } | undefined)?.withhold === true;
      return { status: 201, body: { update: emit(param(req, 'id'), parseBody(controlEventSchema, req.body), { withhold }) } };
    }),
  );
  control.post(
    '/cases/:id/scenario',
    reading((req) => {
      setScenario(param(req, 'id'), scenarioOf(req.body, false));
      return { status: 200, body: simCaseView(caseOf(param(req, 'id'))) };
    }),
  );
  control.post(
    '/scenario',
    reading((req) => {
      setScenario(null, scenarioOf(req.body, true));
      return { status: 200, body: { scenario: book.forcedScenario } };
    }),
  );
  control.get('/updates', reading(() => ({ status: 200, body: { updates: book.updates() } })));
  control.get('/requests', reading(() => ({ status: 200, body: { requests: requestLog.slice() } })));
  control.get('/pushes', reading(() => ({ status: 200, body: { pushes: pusher?.pushLog() ?? [] } })));
  control.get('/faults', reading(() => ({ status: 200, body: { ...faults } })));
  control.post('/faults', reading((req) => ({ status: 200, body: setFaults(req.body ?? {}) })));
  control.post(
    '/pause',
    reading(() => {
      pause();
      return { status: 200, body: { paused } };
    }),
  );
  control.post(
    '/resume',
    reading(() => {
      resume();
      return { status: 200, body: { paused } };
    }),
  );
  control.post(
    '/step',
    reading((req) => {
      const caseId = (req.body as { caseId?: unknown } | undefined)?.caseId;
      return { status: 200, body: { updates: step(typeof caseId === 'string' ? caseId : undefined) } };
    }),
  );
  if (riverty) {
    control.get('/transactions', reading(() => ({ status: 200, body: { transactions: feed!.all() } })));
    control.post('/transactions/release', reading(() => ({ status: 200, body: { released: feed!.release() } })));
    control.get('/tokens', reading(() => ({ status: 200, body: { tokens: tokenIssuer!.log() } })));
    control.post('/tokens/revoke', reading(() => ({ status: 200, body: { revoked: tokenIssuer!.revokeAll() } })));
  }
  control.use((req, res) => send(res, errorReply(404, 'not_found', `no route ${req.method} ${req.originalUrl}`)));
  control.use((err: Error & { type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') send(res, errorReply(400, 'invalid_json', 'the body is not valid JSON'));
    else send(res, errorReply(500, 'internal', err.message));
  });

  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, partnerId: settings.partnerId, paused, cases: book.all().length, updates: book.updates().length });
  });
  if (rivertyApi) {
    app.use('/oauth/token', rivertyApi.token);
    app.use('/v1', rivertyApi.v1);
  } else {
    app.use('/v1', v1);
  }
  app.use('/_sim', control);
  app.use((req, res) => send(res, errorReply(404, 'not_found', `no route ${req.method} ${req.originalUrl}`)));

  // ---- start / stop -------------------------------------------------------------------------

  let server: http.Server | null = null;
  let url: string | null = null;

  async function start(port = settings.port, host = settings.host): Promise<{ port: number; url: string }> {
    if (server) throw new Error('agency simulator: already started');
    if (stopped) throw new Error('agency simulator: stopped; create a new one');
    const s = http.createServer(app);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    server = s;
    const bound = (s.address() as AddressInfo).port;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
    log(`agency simulator "${settings.partnerId}" (${settings.personality}) listening on ${url}${settings.hubUrl ? `, pushing to ${settings.hubUrl}` : ', pull only'}`);
    return { port: bound, url };
  }

  async function stop(): Promise<void> {
    stopped = true;
    pause();
    pusher?.stop();
    for (const held of hanging) {
      clearTimeout(held.timer);
      held.socket?.destroy();
    }
    hanging.clear();
    const s = server;
    server = null;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      // Keep-alive connections would hold close() open until they idle out.
      s.closeAllConnections();
    });
  }

  return {
    app,
    personality: settings.personality,
    start,
    stop,
    settings,
    get url() {
      return url;
    },
    cases: () => book.all().map(simCaseView),
    case: (id) => simCaseView(caseOf(id)),
    updates: () => book.updates(),
    requests: () => requestLog.slice(),
    pushes: () => pusher?.pushLog() ?? [],
    pushesSettled: () => pusher?.idle() ?? Promise.resolve(),
    faults: () => ({ ...faults }),
    setFaults,
    pause,
    resume,
    step,
    emit,
    setScenario,
    transactions: () => feed?.all() ?? [],
    releaseTransactions: () => feed?.release() ?? 0,
    tokens: () => tokenIssuer?.log() ?? [],
    revokeTokens: () => tokenIssuer?.revokeAll() ?? 0,
  };
}
