/**
 * Retention of personal data (issue 13, item 6; GDPR art. 5(1)(e) storage limitation): the raw
 * PSP payloads (inbound_events.payload), the bodies of the sync log's exchanges (what was sent to
 * and received from agencies, PSPs and merchants) and the agencies' free-text notes are kept for
 * `privacy.retentionDays`, then purged of personal data. What stays is the accounting trail: the
 * invoices, claims, cases, amounts and every status change with its date and source, and of each
 * purged row its ids, type, outcome and dates. The decision (what is old enough, what a purged
 * payload keeps) is pure; `purgeExpired` is the SQL edge, run by the hub's background loop.
 *
 * Screening's identifier hashes (src/screening/store.ts) are not purged here: they follow the
 * customer's lifetime, not the age of a payload — they go when the customer's personal data is
 * erased (src/privacy/erasure.ts) and with the customer row (ON DELETE CASCADE, migration 019).
 * A screening that could not find a customer after 180 days would fail exactly what it is for.
 */
import type { Sql } from '../store/db';
import { DAY_MS } from '../domain/clock';

export interface RetentionSettings {
  /** Days a raw payload or exchange body is kept with its personal data. */
  retentionDays: number;
  /** How often the purge runs. */
  purgeEveryMinutes: number;
}

/**
 * 180 days: past the card networks' 120-day chargeback window (a dispute's evidence is read from
 * the raw event while it can still come), short of keeping a debtor's address and IBAN in raw
 * JSON for years. SEPA's 13-month refund right for unauthorised debits is answered from the
 * accounting trail (invoice, mandate status, timeline), which stays.
 */
export const RETENTION_DEFAULTS: RetentionSettings = { retentionDays: 180, purgeEveryMinutes: 60 };

/** Rows received before this instant are purged. */
export function retentionCutoff(now: Date, retentionDays: number): Date {
  return new Date(now.getTime() - retentionDays * DAY_MS);
}

/** What a purged raw PSP payload keeps: that it was purged, when and why. Ids and type stay in their own columns. */
export function purgedPayload(at: Date, why: 'retention' | 'erasure'): Record<string, unknown> {
  return { purged: true, why, at: at.toISOString() };
}

/** Inbound events still waiting to be processed are never purged: their payload is the work. */
const FINISHED_EVENT = `status IN ('processed','ignored','failed')`;
/** Rows purged per statement, so one purge never holds a long lock on a large backlog. */
const BATCH = 1000;

export interface PurgeResult {
  inboundEvents: number;
  exchanges: number;
  partnerUpdates: number;
  /** Stored flag sets of debtors with no flag left, unchanged for the retention period (only when any). */
  debtorProfiles?: number;
}

/** One pass of the retention purge; returns how many rows of each kind it purged. */
export async function purgeExpired(sql: Sql, now: Date, settings: RetentionSettings): Promise<PurgeResult> {
  const cutoff = retentionCutoff(now, settings.retentionDays);
  const out: PurgeResult = { inboundEvents: 0, exchanges: 0, partnerUpdates: 0 };
  for (;;) {
    const r = await sql.query(
      `UPDATE inbound_events SET payload = $2::jsonb, purged_at = $3
        WHERE id IN (SELECT id FROM inbound_events WHERE purged_at IS NULL AND received_at < $1 AND ${FINISHED_EVENT} LIMIT ${BATCH})`,
      [cutoff, JSON.stringify(purgedPayload(now, 'retention')), now],
    );
    out.inboundEvents += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < BATCH) break;
  }
  for (;;) {
    const r = await sql.query(
      `UPDATE exchanges SET request = NULL, response = NULL, purged_at = $2
        WHERE id IN (SELECT id FROM exchanges WHERE purged_at IS NULL AND created_at < $1 LIMIT ${BATCH})`,
      [cutoff, now],
    );
    out.exchanges += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < BATCH) break;
  }
  for (;;) {
    const r = await sql.query(
      `UPDATE partner_updates SET payload = payload - 'note', purged_at = $2
        WHERE id IN (SELECT id FROM partner_updates WHERE purged_at IS NULL AND received_at < $1 AND status <> 'received' LIMIT ${BATCH})`,
      [cutoff, now],
    );
    out.partnerUpdates += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < BATCH) break;
  }
  const profiles = await purgeIdleDebtorProfiles(sql, cutoff);
  if (profiles) out.debtorProfiles = profiles;
  return out;
}

/**
 * The payment-behaviour profile is derived data (issue 17): of it only the flag set last sent to
 * the merchant is stored (debtor_profiles, src/profile/flags-sync.ts). A row with no flag left
 * says no more than no row does; once it has not changed for the retention period it is deleted.
 * A row with flags on is current (each flag ages out of its window, and the row is emptied then).
 */
export async function purgeIdleDebtorProfiles(sql: Sql, cutoff: Date): Promise<number> {
  const r = await sql.query(`DELETE FROM debtor_profiles WHERE flags = '[]'::jsonb AND changed_at < $1`, [cutoff]);
  return r.rowCount ?? 0;
}
