/**
 * The sync log (contract §6 `/v1/sync-log`): every inbound and outbound exchange with its
 * outcome. Payloads and summaries are redacted before they are written (card numbers, IBANs and
 * secrets never reach the table, so no reader — the JSON API, the CSV export, a backup — can show them).
 */
import type { Sql } from '../store/db';
import { holdBack } from '../store/deferred';
import { redact, redactText } from '../observability/redact';

export type ExchangeOutcome = 'ok' | 'duplicate' | 'ignored' | 'rejected' | 'retrying' | 'dead' | 'stale' | 'failed';

export interface ExchangeEntry {
  merchantId: string | null;
  direction: 'in' | 'out';
  /** A PSP id (stripe…) or a partner id. */
  party: string;
  /** The event type or the call (`POST /v1/cases`). */
  operation: string;
  outcome: ExchangeOutcome;
  httpStatus?: number | null;
  latencyMs?: number | null;
  customerId?: string | null;
  invoiceId?: string | null;
  caseId?: string | null;
  outboxId?: number | null;
  inboundEventId?: number | null;
  summary?: string | null;
  /** What was sent or received. An inbound webhook leaves it out: its payload is the inbound event's (inboundRequestView). */
  request?: unknown;
  response?: unknown;
  at: Date;
}

const MAX_KEPT_CHARS = 64_000;

/** Cap stored payloads so one huge body cannot bloat the log. */
function bounded(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  const s = JSON.stringify(redact(v));
  return s.length > MAX_KEPT_CHARS ? JSON.stringify({ truncated: true, preview: s.slice(0, 2000) }) : s;
}

/**
 * The `request` of an inbound webhook's entry as the sync log shows it. A webhook's entry does not
 * keep a copy of the payload (it is stored once, in inbound_events, which `inbound_event_id`
 * points at); readers join it and pass it through here, which masks it and caps it exactly as
 * recordExchanges does for the payloads it keeps.
 */
export function inboundRequestView(payload: unknown): unknown {
  if (payload === undefined || payload === null) return null;
  const masked = redact(typeof payload === 'string' ? JSON.parse(payload) : payload);
  const s = JSON.stringify(masked);
  return s.length > MAX_KEPT_CHARS ? { truncated: true, preview: s.slice(0, 2000) } : masked;
}

/**
 * The join that gives a sync-log query the payload of an inbound webhook's entry (see
 * inboundRequestView), for entries `alias` that keep no request of their own.
 */
export const inboundPayloadJoin = (alias: string) =>
  `LEFT JOIN inbound_events inbound_payload_of ON ${alias}.request IS NULL AND ${alias}.direction = 'in' AND inbound_payload_of.id = ${alias}.inbound_event_id`;

export async function recordExchanges(sql: Sql, entries: ExchangeEntry[]): Promise<void> {
  if (!entries.length) return;
  // Inside a batch or a group of completions: written with the others, at the end (src/store/deferred.ts).
  if (holdBack(sql, 'exchanges', entries, insertExchanges)) return;
  await insertExchanges(sql, entries);
}

async function insertExchanges(sql: Sql, entries: ExchangeEntry[]): Promise<void> {
  const cols = 16;
  const values: unknown[] = [];
  const rows = entries.map((e, i) => {
    values.push(
      e.merchantId, e.direction, e.party, e.operation, e.outcome, e.httpStatus ?? null, e.latencyMs == null ? null : Math.round(e.latencyMs),
      e.customerId ?? null, e.invoiceId ?? null, e.caseId ?? null, e.outboxId ?? null, e.inboundEventId ?? null,
      e.summary == null ? null : redactText(e.summary), bounded(e.request), bounded(e.response), e.at,
    );
    return `(${Array.from({ length: cols }, (_, j) => `$${i * cols + j + 1}`).join(',')})`;
  });
  await sql.query(
    `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, http_status, latency_ms, customer_id, invoice_id, case_id,
       outbox_id, inbound_event_id, summary, request, response, created_at) VALUES ${rows.join(',')}`,
    values,
  );
}
