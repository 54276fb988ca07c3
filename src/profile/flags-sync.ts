/**
 * `customer.flags_changed` (issue 17): the merchant hears when a debtor's payment-behaviour flags
 * turn on or off. The flag set last sent is kept per debtor (debtor_profiles, migration 018); when
 * the debtor's status history changes (the notification scanner, src/notify/scanner.ts) or a flag
 * may have aged out of its window (`recheck_at`), the profile is computed again and, only if the set
 * differs, the row is updated and one `merchant.webhook` outbox row written — in the same
 * transaction, under the row's lock, with an idempotency key made of the debtor, the new set and
 * what triggered it (the history row, or the re-check time). So one change of the set is one
 * webhook, and nothing changed is none.
 *
 * Only for a merchant whose webhooks carry the event (no `events` filter, or one naming it), or who
 * has the flags written to its Stripe customers' metadata (`writeBack.stripe.customerFlags`: a
 * `psp.writeback` row per Stripe customer of the debtor, src/notify/stripe-writeback-stage.ts); a
 * debtor whose data was erased (src/privacy/erasure.ts) is profiled no more, and the flags written
 * to the PSP are removed.
 *
 * The event:
 * ```json
 * { "id": "msg_f…", "type": "customer.flags_changed", "createdAt": "…",
 *   "data": { "debtorId": "dbt_…", "merchantRef": "…", "customers": [{ "id": "…", "ref": "cus_…", "provider": "stripe" }],
 *             "flags": [{ "name": "broken_arrangement_12m", "on": true, "why": "…", "facts": { … } }],
 *             "previous": ["in_collection_now"], "turnedOn": ["broken_arrangement_12m"], "turnedOff": [],
 *             "profile": { "asOf": "…", "windows": { … }, "current": { … } },
 *             "change": { "status": "flags_changed", "reason": null, "source": "hub", "occurredAt": "…" } } }
 * ```
 */
import { createHash } from 'node:crypto';
import type { MerchantSettings, OutboxWriter } from '../context';
import type { Sql } from '../store/db';
import { merchantLane, outboxKind, pspLane } from '../notify/kinds';
import { PSP_CONNECTORS } from '../../connectors/registry';
import { debtorErased, flagSet, loadDebtorProfile, type DebtorProfile } from './profile';

export const FLAGS_EVENT = 'customer.flags_changed' as const;

/** The merchant wants `customer.flags_changed` events (webhooks on, and the type not filtered out). */
export function wantsFlagEvents(merchant: Pick<MerchantSettings, 'webhooks'> | undefined): boolean {
  const hooks = merchant?.webhooks;
  return !!hooks && (!hooks.events || hooks.events.includes(FLAGS_EVENT));
}

/** The merchant has the flags written to its Stripe customers' metadata (`writeBack.stripe.customerFlags`). */
export function writesFlagsToPsp(merchant: Pick<MerchantSettings, 'writeBack'> | undefined): boolean {
  return !!merchant?.writeBack?.stripe?.customerFlags;
}

/** The hub keeps this merchant's debtors' flag sets: for its webhooks, its PSP write-back, or both. */
export function tracksFlags(merchant: Pick<MerchantSettings, 'webhooks' | 'writeBack'> | undefined): boolean {
  return wantsFlagEvents(merchant) || writesFlagsToPsp(merchant);
}

/** PSPs whose connector declares it can keep the flags in its customer's metadata (and whose write-back stage does). */
const METADATA_PSPS = new Set(PSP_CONNECTORS.filter((c) => c.capabilities?.customerMetadata).map((c) => c.id));
const WRITE_BACK_STAGES = new Set(['stripe']);

/** What made the hub look again: a status_history row of the debtor, or the re-check time of a flag's window. */
export type FlagsTrigger = { historyId: number | string } | { recheckAt: Date };

export type FlagsSyncOutcome = 'changed' | 'unchanged' | 'erased' | 'not_wanted';

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The idempotency key of the webhook for this change: debtor + new flag set + trigger. */
export function flagsIdempotencyKey(debtorId: string, flags: string[], trigger: FlagsTrigger): string {
  const set = flags.length ? flags.join('+') : 'none';
  const by = 'historyId' in trigger ? `h${trigger.historyId}` : `t${trigger.recheckAt.getTime()}`;
  return `flags-${debtorId}-${set}-${by}`;
}

/** The Standard Webhooks message id of that key: stable, short, free of ".". */
export const flagsEventId = (key: string) => `msg_f${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;

export interface FlagsChangedEvent {
  id: string;
  type: typeof FLAGS_EVENT;
  createdAt: string;
  data: {
    debtorId: string;
    merchantRef: string | null;
    customers: { id: string; ref: string; provider: string }[];
    flags: DebtorProfile['flags'];
    previous: string[];
    turnedOn: string[];
    turnedOff: string[];
    profile: Pick<DebtorProfile, 'asOf' | 'windows' | 'current'>;
    change: { status: 'flags_changed'; reason: null; source: 'hub'; occurredAt: string };
  };
}

/**
 * Compute the debtor's flags again and, if the set changed since it was last sent, store the new
 * set and owe the merchant one webhook. Runs inside the caller's transaction (the scanner's).
 */
export async function syncDebtorFlags(
  sql: Sql,
  outbox: OutboxWriter,
  merchant: MerchantSettings,
  debtorId: string,
  now: Date,
  trigger: FlagsTrigger,
): Promise<FlagsSyncOutcome> {
  if (!tracksFlags(merchant)) return 'not_wanted';
  if (await debtorErased(sql, merchant.id, debtorId)) {
    await sql.query(`DELETE FROM debtor_profiles WHERE debtor_id = $1 AND merchant_id = $2`, [debtorId, merchant.id]);
    // Flags written to the PSP go too (once per customer): derived data is not left behind there.
    if (writesFlagsToPsp(merchant)) for (const row of await pspFlagRows(sql, merchant, debtorId, [], 'erased')) await outbox.add(row);
    return 'erased';
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const row = (await sql.query<{ flags: string[]; recheck_at: Date | null }>(
      `SELECT flags, recheck_at FROM debtor_profiles WHERE debtor_id = $1 AND merchant_id = $2 FOR UPDATE`,
      [debtorId, merchant.id],
    )).rows[0];
    const profile = await loadDebtorProfile(sql, merchant, debtorId, now);
    const next = flagSet(profile);
    const previous = row ? [...(row.flags ?? [])].sort() : [];
    const recheckAt = profile.recheckAt ? new Date(profile.recheckAt) : null;
    if (sameSet(previous, next)) {
      const stored = row?.recheck_at ? new Date(row.recheck_at).getTime() : null;
      if (row && stored !== (recheckAt?.getTime() ?? null)) {
        await sql.query(`UPDATE debtor_profiles SET recheck_at = $2 WHERE debtor_id = $1`, [debtorId, recheckAt]);
      }
      return 'unchanged';
    }
    const historyId = 'historyId' in trigger ? Number(trigger.historyId) : null;
    if (row) {
      await sql.query(`UPDATE debtor_profiles SET flags = $2::jsonb, history_id = $3, changed_at = $4, recheck_at = $5 WHERE debtor_id = $1`, [debtorId, JSON.stringify(next), historyId, now, recheckAt]);
    } else {
      const inserted = await sql.query(
        `INSERT INTO debtor_profiles (debtor_id, merchant_id, flags, history_id, changed_at, recheck_at) VALUES ($1,$2,$3::jsonb,$4,$5,$6)
         ON CONFLICT (debtor_id) DO NOTHING RETURNING debtor_id`,
        [debtorId, merchant.id, JSON.stringify(next), historyId, now, recheckAt],
      );
      // Another transaction stored it first: look again under its lock.
      if (!inserted.rows.length) continue;
    }
    if (wantsFlagEvents(merchant)) await outbox.add(await flagsWebhookRow(sql, merchant, debtorId, profile, previous, next, trigger, now));
    if (writesFlagsToPsp(merchant)) for (const r of await pspFlagRows(sql, merchant, debtorId, next, flagsIdempotencyKey(debtorId, next, trigger))) await outbox.add(r);
    return 'changed';
  }
  return 'unchanged';
}

async function flagsWebhookRow(sql: Sql, merchant: MerchantSettings, debtorId: string, profile: DebtorProfile, previous: string[], next: string[], trigger: FlagsTrigger, now: Date) {
  const customers = (await sql.query<{ id: string; provider_ref: string; provider: string; external_ref: string | null }>(
    `SELECT c.id, c.provider_ref, c.provider, d.external_ref FROM customers c JOIN debtors d ON d.id = c.debtor_id
      WHERE c.merchant_id = $1 AND c.debtor_id = $2 ORDER BY c.created_at, c.id`,
    [merchant.id, debtorId],
  )).rows;
  const key = flagsIdempotencyKey(debtorId, next, trigger);
  const event: FlagsChangedEvent = {
    id: flagsEventId(key),
    type: FLAGS_EVENT,
    createdAt: now.toISOString(),
    data: {
      debtorId,
      merchantRef: customers[0]?.external_ref ?? null,
      customers: customers.map((c) => ({ id: c.id, ref: c.provider_ref, provider: c.provider })),
      flags: profile.flags,
      previous,
      turnedOn: next.filter((f) => !previous.includes(f)),
      turnedOff: previous.filter((f) => !next.includes(f)),
      profile: { asOf: profile.asOf, windows: profile.windows, current: profile.current },
      change: { status: 'flags_changed', reason: null, source: 'hub', occurredAt: now.toISOString() },
    },
  };
  return {
    kind: outboxKind('merchant.webhook'),
    lane: merchantLane(merchant.id),
    payload: { ...('historyId' in trigger ? { historyId: Number(trigger.historyId) } : {}), debtorId, event },
    idempotencyKey: key,
    merchantId: merchant.id,
    customerId: customers[0]?.id ?? null,
    invoiceId: null,
  };
}

/**
 * `psp.writeback` rows that put the flag set into the metadata of each of the debtor's customers at a
 * PSP that declares the capability. The stage writes the set stored when it runs (so rows that run
 * out of order still leave the newest set), and removes the key when there is none.
 */
async function pspFlagRows(sql: Sql, merchant: MerchantSettings, debtorId: string, flags: string[], key: string) {
  const customers = (await sql.query<{ id: string; provider: string; provider_ref: string }>(
    `SELECT id, provider, provider_ref FROM customers WHERE merchant_id = $1 AND debtor_id = $2 ORDER BY created_at, id`,
    [merchant.id, debtorId],
  )).rows.filter((c) => METADATA_PSPS.has(c.provider) && WRITE_BACK_STAGES.has(c.provider) && c.provider_ref.startsWith('cus_'));
  return customers.map((c) => ({
    kind: outboxKind('psp.writeback'),
    lane: pspLane(c.provider),
    payload: { action: 'customer_flags' as const, provider: c.provider, ref: c.provider_ref, customerId: c.id, debtorId, flags },
    idempotencyKey: `writeback-${key}-${c.id}`,
    merchantId: merchant.id,
    customerId: c.id,
    invoiceId: null,
  }));
}

/**
 * The debtors behind a page of status_history rows (customer, invoice, claim or case rows), each
 * with the last of its rows in the page: one recompute per debtor per page.
 */
export async function debtorsOfHistory(
  sql: Sql,
  rows: { id: number | string; merchant_id: string; entity: string; entity_id: string }[],
): Promise<{ merchantId: string; debtorId: string; historyId: number }[]> {
  if (!rows.length) return [];
  const r = await sql.query<{ hid: string | number; merchant_id: string; debtor_id: string | null }>(
    `SELECT r.hid, r.merchant_id, COALESCE(cu.debtor_id, ci.debtor_id, ca.debtor_id, cc.debtor_id) AS debtor_id
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS r(hid, merchant_id, entity, entity_id)
       LEFT JOIN customers cu ON r.entity = 'customer' AND cu.id = r.entity_id AND cu.merchant_id = r.merchant_id
       LEFT JOIN invoices i ON r.entity = 'invoice' AND i.id = r.entity_id AND i.merchant_id = r.merchant_id
       LEFT JOIN customers ci ON ci.id = i.customer_id
       LEFT JOIN cases ca ON r.entity = 'case' AND ca.id = r.entity_id AND ca.merchant_id = r.merchant_id
       LEFT JOIN claims cl ON r.entity = 'claim' AND cl.id = r.entity_id AND cl.merchant_id = r.merchant_id
       LEFT JOIN cases cc ON cc.id = cl.case_id`,
    [rows.map((x) => Number(x.id)), rows.map((x) => x.merchant_id), rows.map((x) => x.entity), rows.map((x) => x.entity_id)],
  );
  const last = new Map<string, { merchantId: string; debtorId: string; historyId: number }>();
  const order = new Map(rows.map((x, i) => [Number(x.id), i]));
  for (const x of r.rows) {
    if (!x.debtor_id) continue;
    const hid = Number(x.hid);
    const seen = last.get(x.debtor_id);
    if (!seen || (order.get(hid) ?? 0) > (order.get(seen.historyId) ?? 0)) last.set(x.debtor_id, { merchantId: x.merchant_id, debtorId: x.debtor_id, historyId: hid });
  }
  // Debtor order: two passes that meet lock the same rows in the same order.
  return [...last.values()].sort((a, b) => a.debtorId.localeCompare(b.debtorId));
}
