/**
 * The outbox kinds and lanes of the notification side (merchant webhooks, PSP write-back) and of
 * the merchant's own hold/resume requests. The kinds are listed in OUTBOX_KINDS
 * (src/outbox/outbox.ts) and their stages in the stage registry (src/outbox/stages.ts).
 */
import type { HubConfig } from '../config/load';
import type { OutboxKind } from '../outbox/outbox';

export const NOTIFY_KINDS = ['merchant.webhook', 'psp.writeback', 'agency.hold', 'agency.resume'] as const;
export type NotifyKind = (typeof NOTIFY_KINDS)[number];

/** The OutboxKind of one of ours (the same string, checked to be one: OUTBOX_KINDS lists every NotifyKind). */
export const outboxKind = <K extends NotifyKind & OutboxKind>(kind: K): K => kind;

/** One queue per merchant endpoint, so a slow or failing merchant never delays another. */
export const merchantLane = (merchantId: string) => `merchant.${merchantId}`;
/** One queue per PSP written back to. */
export const pspLane = (provider: string) => `psp.${provider}`;

/** The lanes whose workers must run besides 'hub' and the partners' (BullMQ starts a worker per lane). */
export function notifyLanes(config: Pick<HubConfig, 'merchants'>): string[] {
  const lanes = new Set<string>();
  for (const m of config.merchants) {
    if (m.webhooks) lanes.add(merchantLane(m.id));
    if (m.writeBack?.stripe) lanes.add(pspLane('stripe'));
  }
  return [...lanes];
}
