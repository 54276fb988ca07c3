/**
 * The interface every collection-agency connector implements. The hub's delivery stage calls
 * these methods from outbox rows; each mutating call carries the row's idempotency key.
 * Errors are DeliveryError so the outbox knows whether to retry (design.md habit 7).
 */
import type { z } from 'zod';
import type { AgencyUpdate, DebtorType, Address, Money, FailureReason } from '../../src/domain/types';
import type { AgencyMapping } from '../../src/mappings/types';

export interface CaseDebtor {
  reference: string;
  type: DebtorType;
  name: string;
  email?: string;
  phone?: string;
  address?: Address;
  country?: string;
  locale?: string;
}

export interface CaseClaim {
  reference: string;
  number?: string;
  principal: Money;
  issuedAt?: string;
  dueAt?: string;
  description?: string;
  failure: { provider: string; code: string; reason: FailureReason };
  /**
   * This claim's statutory costs (issue 12): its own, capped across the debtor's claims; value 0
   * with the reason when none may be charged (no evidence of the required letter). A documented
   * extension of contract §5 like withdraw's `claimReference`; the case-level `collectionCosts`
   * stays the sum over the case's claims.
   */
  collectionCosts?: Money & { basis: string };
}

export interface CaseSubmission {
  reference: string;
  creditor: { id: string; name: string };
  debtor: CaseDebtor;
  claims: CaseClaim[];
  collectionCosts?: Money & { basis: string };
}

export interface DirectPayment {
  amount: Money;
  paidAt: string;
  channel: string;
}

export interface AgencyCaseView {
  id: string;
  reference: string;
  status: string;
  claims: { reference: string; status: string; reason?: string; amountCollected: Money }[];
}

/** One HTTP exchange with the agency, reported so the hub can write its sync log. */
export interface ExchangeRecord {
  method: string;
  url: string;
  requestBody?: unknown;
  status?: number;
  responseBody?: unknown;
  latencyMs: number;
  error?: string;
}

export interface CallContext {
  /** Sent as `Idempotency-Key` on mutating calls; derived from the outbox row. */
  idempotencyKey: string;
  onExchange?: (x: ExchangeRecord) => void;
}

export interface ReadContext {
  onExchange?: (x: ExchangeRecord) => void;
}

export interface AgencyClient {
  submitCase(c: CaseSubmission, ctx: CallContext): Promise<{ partnerRef: string; status: string }>;
  addClaim(casePartnerRef: string, claim: CaseClaim, ctx: CallContext): Promise<void>;
  reportPayment(casePartnerRef: string, claimReference: string, p: DirectPayment, ctx: CallContext): Promise<void>;
  /** Withdraw the whole case, or one claim of it when `claimReference` is given. */
  withdraw(casePartnerRef: string, w: { reason: string; claimReference?: string }, ctx: CallContext): Promise<void>;
  /**
   * Put the whole case, or one claim of it when `claimReference` is given, on hold: the agency
   * pauses collection and reports `on_hold`. Optional: absent when the agency has no such call.
   * (Reference protocol: `POST /v1/cases/:id/hold` `{ reason, claimReference? }` → 202, a documented
   * extension of contract §5 like withdraw's `claimReference`.)
   */
  hold?(casePartnerRef: string, h: { reason: string; claimReference?: string }, ctx: CallContext): Promise<void>;
  /**
   * Resume collection of a case (or one claim of it) put on hold: the agency reports
   * `in_collection` and carries on. Optional, like `hold`. (Reference protocol:
   * `POST /v1/cases/:id/resume` `{ reason, claimReference? }` → 202.)
   */
  resume?(casePartnerRef: string, r: { reason: string; claimReference?: string }, ctx: CallContext): Promise<void>;
  getCase(casePartnerRef: string, ctx?: ReadContext): Promise<AgencyCaseView>;
  /** Updates after `cursor` (null: from the start), oldest first, mapped to canonical ones. */
  pullUpdates(cursor: string | null, limit: number, ctx?: ReadContext): Promise<{ updates: AgencyUpdate[]; next: string | null }>;
  /**
   * Verify a push from the agency (auth header + body) and return its canonical updates.
   * Throws PushRejection when it must not be accepted. Absent for pull-only agencies.
   */
  /** `onToken` is told the verified token's id and expiry, so the hub can refuse a replay of it. */
  verifyPush?(headers: Record<string, string | undefined>, body: unknown, onToken?: (t: { jti: string; expiresAt: Date }) => void): AgencyUpdate[];
}

export class PushRejection extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'PushRejection';
  }
}

/** Signs the hub's outbound JWTs (contract §5); the hub owns the keys. */
export interface HubTokenSigner {
  /** A JWT for `aud`, signed with `alg` (HS256 needs `secret`; RS256/ES256 use the hub's key). */
  sign(opts: { audience: string; alg: 'HS256' | 'RS256' | 'ES256'; secret?: string; ttlSeconds?: number }): string;
}

export interface AgencyConnectorDeps<Cfg> {
  partnerId: string;
  hubId: string;
  config: Cfg;
  mapping: AgencyMapping;
  signer: HubTokenSigner;
}

export interface AgencyConnector<Cfg = unknown> {
  /** The `connector:` value in a partner's config. */
  readonly id: string;
  /** zod schema of the whole partner block for this connector. */
  readonly configSchema: z.ZodType<Cfg>;
  create(deps: AgencyConnectorDeps<Cfg>): AgencyClient;
}

/**
 * Classification of a failed agency call. Network errors, timeouts, 429 and 5xx are retryable
 * (honour Retry-After); other 4xx are permanent and go to the dead letter with the answer kept.
 */
export class DeliveryError extends Error {
  constructor(
    readonly retryable: boolean,
    message: string,
    readonly status?: number,
    readonly responseBody?: unknown,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}
