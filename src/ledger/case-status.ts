/**
 * A case's status follows its claims (issue 4: a case closes only when every claim has; issue 12,
 * hole 9: a case does not stay `submitted` while its claims progress one by one). The rule is a
 * pure function (`deriveCaseStatus`) of the case's claims; `refreshCaseStatus` applies it after a
 * claim changes.
 *
 * The rule, in order:
 *  1. every claim has ended → `paid` (paid_to_merchant when every claim was, else paid_in_full),
 *     `withdrawn`, `uncollectible` when all ended that way, else `closed`;
 *  2. money came in on some claim (a claim `paid`, `partially_paid`, or with an amount collected)
 *     while others are still live → `partially_paid` — unless every live claim is under an
 *     arrangement (instalments are how it pays): then `arrangement`. A lone claim keeps its status;
 *  3. every live claim paused the same way → `on_hold` or `disputed`; paused in both ways → `disputed`;
 *  4. otherwise the least-advanced live claim that is not paused: `submitted` < `in_collection` <
 *     `arrangement` (the case is as far as the claim furthest behind).
 * An agency's own case-level update still sets the case's status directly; the next claim change
 * derives it again.
 */
import type { Sql } from '../store/db';
import { addHistory, type HistoryEntry } from './history';

const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];
const PAUSED = ['on_hold', 'disputed'];
/** How far a live claim has come; anything unlisted counts as the start. */
const PROGRESS = ['submitted', 'in_collection', 'arrangement'];

export interface ClaimFacts {
  status: string;
  resolution: string | null;
  amount_collected?: number | string | null;
  /** The payment arrangement the agency agreed for the claim, if any. */
  arrangement?: unknown;
}

/** A claim paying instalments of its arrangement is under that arrangement, whatever the agency calls each instalment. */
const effective = (c: ClaimFacts): ClaimFacts => (c.status === 'partially_paid' && c.arrangement ? { ...c, status: 'arrangement' } : c);

export interface DerivedCaseStatus {
  status: string;
  resolution: string | null;
  /** The case has ended (closed_at is set). */
  ended: boolean;
}

/** The status the case's claims call for, or null when there are no claims (nothing to derive). */
export function deriveCaseStatus(given: ClaimFacts[]): DerivedCaseStatus | null {
  if (!given.length) return null;
  const claims = given.map(effective);
  const live = claims.filter((c) => !TERMINAL.includes(c.status));
  if (!live.length) {
    const all = (s: string) => claims.every((x) => x.status === s);
    if (all('paid')) return { status: 'paid', resolution: claims.every((x) => x.resolution === 'paid_to_merchant') ? 'paid_to_merchant' : 'paid_in_full', ended: true };
    if (all('withdrawn')) return { status: 'withdrawn', resolution: 'withdrawn_by_merchant', ended: true };
    if (all('uncollectible')) return { status: 'uncollectible', resolution: claims[0].resolution ?? 'written_off', ended: true };
    return { status: 'closed', resolution: null, ended: true };
  }
  // Money in on one claim while another is still live; a lone claim keeps its own status (a single
  // claim under an arrangement with instalments paid is `arrangement`, as the agency says).
  const paidSome = (c: ClaimFacts) => c.status === 'paid' || c.status === 'partially_paid' || Number(c.amount_collected ?? 0) > 0;
  // Instalments are how an arrangement pays: while every live claim is under one, the case is an arrangement.
  const allArranged = live.every((c) => c.status === 'arrangement');
  const moneyIn = !allArranged && claims.some((c) => c.status === 'partially_paid' || (paidSome(c) && live.some((other) => other !== c)));
  if (moneyIn) return { status: 'partially_paid', resolution: null, ended: false };
  for (const p of PAUSED) if (live.every((c) => c.status === p)) return { status: p, resolution: null, ended: false };
  const moving = live.filter((c) => !PAUSED.includes(c.status));
  // Every live claim paused, but not the same way (one held by the merchant, one contested by the
  // debtor): nothing moves, and the dispute is what the merchant must act on (found by the model test).
  if (!moving.length) return { status: 'disputed', resolution: null, ended: false };
  const rank = (s: string) => Math.max(0, PROGRESS.indexOf(s));
  const least = moving.reduce((m, c) => (rank(c.status) < rank(m.status) ? c : m), moving[0]);
  return { status: PROGRESS[rank(least.status)], resolution: null, ended: false };
}

/**
 * What the case's claims change in the case, if anything: its new status and the timeline entry
 * (null: it has ended already, has no claims, or already says so). Pure; refreshCaseStatus below
 * and the set-based agency updates (src/sync/update-state.ts) write what it returns.
 */
export function caseStatusChange(
  kase: { id: string; merchant_id: string; status: string }, claims: ClaimFacts[], now: Date, source: string,
): { next: DerivedCaseStatus; history: HistoryEntry } | null {
  if (TERMINAL.includes(kase.status)) return null;
  const next = deriveCaseStatus(claims);
  if (!next || next.status === kase.status) return null;
  return {
    next,
    history: {
      merchantId: kase.merchant_id, entity: 'case', entityId: kase.id, status: next.status, reason: next.resolution, source, occurredAt: now,
      detail: { derived: next.ended ? 'every claim has ended' : 'from its claims (README, "Case status")' },
    },
  };
}

export async function refreshCaseStatus(sql: Sql, caseId: string, now: Date, source: string): Promise<void> {
  // The case and its claims' facts in one read (the claims ride along as JSON).
  const c = await sql.query<{ status: string; merchant_id: string; resolution: string | null; claims: ClaimFacts[] }>(
    `SELECT k.status, k.merchant_id, k.resolution,
            COALESCE((SELECT jsonb_agg(jsonb_build_object('status', cl.status, 'resolution', cl.resolution, 'amount_collected', cl.amount_collected, 'arrangement', cl.arrangement))
                        FROM claims cl WHERE cl.case_id = k.id), '[]'::jsonb) AS claims
       FROM cases k WHERE k.id = $1`,
    [caseId],
  );
  if (!c.rows[0]) return;
  const change = caseStatusChange({ id: caseId, ...c.rows[0] }, c.rows[0].claims, now, source);
  if (!change) return;
  const { next } = change;
  await sql.query(
    `UPDATE cases SET status = $2, resolution = $3, closed_at = CASE WHEN $5 THEN $4 ELSE closed_at END, updated_at = $4 WHERE id = $1`,
    [caseId, next.status, next.resolution, now, next.ended],
  );
  await addHistory(sql, change.history, now);
}
