/**
 * The agency-update side of the ledger as a pure function: what one agency update (contract §5)
 * does to a claim and its invoice — ordering by (occurredAt, seq) so a status never moves back in
 * time, the collected amount (a running total, kept even from an update too old to change the
 * status), the invoice mirroring its claim unless the hub settled it another way, and the owed-back
 * record when the agency collected what the debtor also paid through the PSP
 * (src/ledger/owed-back.ts). No SQL: src/sync/partner-updates.ts loads the claim and the invoice,
 * calls decideClaimUpdate and writes what it returns.
 */
import type { AgencyUpdate } from '../domain/types';
import type { HistoryEntry } from './history';
import type { ClaimRow, InvoiceRow } from './rows';
import { decideCollection, type OwedBack } from './owed-back';

const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];

/** Is (occurredAt, seq) strictly newer than what was last applied? */
export function isNewer(u: { occurredAt: string; seq: number }, last: { at: Date | string | null; seq: number | string | null }): boolean {
  if (!last.at) return true;
  const a = new Date(u.occurredAt).getTime();
  const b = new Date(last.at).getTime();
  if (a !== b) return a > b;
  return last.seq == null || u.seq > Number(last.seq);
}

/**
 * How far the agency's clock may run behind ours: an update dated more than this before the claim
 * reached the agency (`sent_at`) cannot be news about it, and is stale like one older than the last.
 */
export const AGENCY_CLOCK_SKEW_MS = 10 * 60_000;

export type ClaimState = Pick<ClaimRow, 'id' | 'case_id' | 'invoice_id' | 'merchant_id' | 'status' | 'resolution' | 'amount_collected' | 'last_update_at' | 'last_update_seq'> & {
  sent_at?: Date | string | null;
  amount_update_at?: Date | string | null;
  amount_update_seq?: number | string | null;
};

export interface ClaimUpdateDecision {
  /** The update changed the claim's status (false: stale, or a progress update on an ended claim). */
  applied: boolean;
  /** Columns of the claim to write (null: none). `amountUpdate` stamps amount_update_at/seq with the update's. */
  claimPatch: {
    status?: string; resolution?: string | null; amountCollected: number; arrangement?: unknown; lastUpdate?: boolean; amountUpdate: boolean;
  } | null;
  /** Columns of the invoice to write (null: none). */
  invoicePatch: {
    status?: string; resolution?: string | null; resolvedBy?: string | null; arrangement?: unknown; lastUpdate?: boolean;
    amountCollected?: number; amountOwedBack?: number;
  } | null;
  history: HistoryEntry[];
  /** The owed-back record this update made, for the sync log. */
  owed: OwedBack | null;
}

/**
 * One update for one claim. `caseLevel`: a case-wide update applied to each open claim (its amount is
 * the whole case's, so it says nothing about this claim's). `invoice` is the claim's invoice row.
 */
export function decideClaimUpdate(claim: ClaimState, invoice: InvoiceRow | null, u: AgencyUpdate, opts: { source: string; caseLevel?: boolean }): ClaimUpdateDecision {
  const { source } = opts;
  const caseLevel = !!opts.caseLevel;
  const amountIsNewer = !caseLevel && isNewer(u, { at: claim.amount_update_at ?? null, seq: claim.amount_update_seq ?? null });
  const claimCollected = Number(claim.amount_collected);
  const d: ClaimUpdateDecision = { applied: false, claimPatch: null, invoicePatch: null, history: [], owed: null };
  const money = (collected: number) =>
    invoice
      ? decideCollection(
          {
            id: invoice.id, merchantId: invoice.merchant_id, currency: invoice.currency, amountDue: Number(invoice.amount_due), amountPaid: Number(invoice.amount_paid),
            amountCollected: Number(invoice.amount_collected), amountOwedBack: Number(invoice.amount_owed_back ?? 0),
          },
          collected,
          { source, occurredAt: u.occurredAt, detail: { updateId: u.id, claimId: claim.id } },
        )
      : null;

  // Older than the last update applied, or than the claim's own arrival at the agency (a stacked
  // claim sent after the update's date: found by the model test, invariant statuses_not_backwards).
  const beforeSent = !!claim.sent_at && Date.parse(u.occurredAt) < new Date(claim.sent_at).getTime() - AGENCY_CLOCK_SKEW_MS;
  const stale = beforeSent || !isNewer(u, { at: claim.last_update_at, seq: claim.last_update_seq });
  // A claim that has ended (paid to the merchant, withdrawn, collected) is not reopened by a
  // progress update; only another end (the agency's own close of it) is recorded.
  const reopening = TERMINAL.includes(claim.status) && !TERMINAL.includes(u.status);
  if (stale || reopening) {
    // What a claim has collected only grows (the agency reports a running total), so a claim-level
    // amount is kept even from an update too old to change the status: the end state is then the
    // same in whatever order the updates came.
    if (caseLevel || !u.amountCollected || !amountIsNewer) return d;
    d.claimPatch = { amountCollected: u.amountCollected.value, amountUpdate: true };
    const c = money(u.amountCollected.value);
    if (c && (c.amountCollected !== null || c.owed)) {
      d.invoicePatch = { amountCollected: u.amountCollected.value, ...(c.owed ? { amountOwedBack: c.owed.amount } : {}) };
      if (c.owed) d.history.push(c.owed.history);
      d.owed = c.owed;
    }
    return d;
  }

  d.applied = true;
  const collected = amountIsNewer ? (u.amountCollected?.value ?? claimCollected) : claimCollected;
  d.claimPatch = { status: u.status, resolution: u.reason ?? claim.resolution, amountCollected: collected, lastUpdate: true, amountUpdate: amountIsNewer, ...(u.arrangement ? { arrangement: u.arrangement } : {}) };
  d.history.push({
    merchantId: claim.merchant_id, entity: 'claim', entityId: claim.id, status: u.status, reason: u.reason ?? null, source, occurredAt: u.occurredAt,
    detail: { updateId: u.id, seq: u.seq, amountCollected: u.amountCollected, arrangement: u.arrangement, note: u.note },
  });
  if (!invoice) return d;
  // The invoice mirrors its claim, unless the hub already settled it another way (paid to the
  // merchant), or the hub itself ended the claim (withdrawn for a refund, a dispute, a credit note):
  // the agency's confirmation is kept on the claim, and the invoice keeps the reason the hub gave.
  const settledElsewhere = (invoice.resolution === 'paid_to_merchant' && invoice.status === 'paid') || TERMINAL.includes(claim.status);
  const resolves = TERMINAL.includes(u.status) || !!u.reason;
  // The agency confirming what the invoice already shows (its `submitted` after the hand-over, a
  // repeated progress status) changes nothing a reader sees: no write, just the timeline entry.
  const unchanged = invoice.status === u.status && !resolves && invoice.resolution === null && !u.arrangement && Number(invoice.amount_collected) === collected;
  if (!settledElsewhere) {
    if (!unchanged) {
      d.invoicePatch = {
        status: u.status, resolution: resolves ? (u.reason ?? invoice.resolution) : null, amountCollected: collected, lastUpdate: true,
        ...(resolves ? { resolvedBy: source } : {}), ...(u.arrangement ? { arrangement: u.arrangement } : {}),
      };
    }
    d.history.push({
      merchantId: claim.merchant_id, entity: 'invoice', entityId: claim.invoice_id, status: u.status, reason: u.reason ?? null, source, occurredAt: u.occurredAt,
      detail: { updateId: u.id, claimId: claim.id, amountCollected: u.amountCollected, arrangement: u.arrangement, note: u.note },
    });
  }
  // The money: what the agency collected, and any overlap with a PSP payment (owed back), also on
  // an invoice settled another way (the mirror above left it alone).
  if (!settledElsewhere || (amountIsNewer && u.amountCollected)) {
    const c = money(collected);
    if (c?.owed) {
      d.invoicePatch = { ...(d.invoicePatch ?? {}), amountCollected: collected, amountOwedBack: c.owed.amount };
      d.history.push(c.owed.history);
      d.owed = c.owed;
    } else if (settledElsewhere && c?.amountCollected != null) {
      d.invoicePatch = { ...(d.invoicePatch ?? {}), amountCollected: collected };
    }
  }
  return d;
}
