/**
 * Pure: an update in the agency's words → the canonical AgencyUpdate, through
 * mappings/agency/reference.yaml. A status or reason the mapping does not know is refused with
 * an error naming it: guessing would apply a wrong state to someone's debt, while a refused
 * update is kept as failed and applies once the mapping is fixed.
 */
import type { AgencyUpdate } from '../../../src/domain/types';
import type { AgencyMapping } from '../../../src/mappings/types';
import type { ReferenceUpdate } from './schema';

export class UnmappedValueError extends Error {
  constructor(
    /** `status` or `reason`. */
    readonly field: 'status' | 'reason',
    readonly value: string,
    /** The update as received, so the caller can store it as failed. */
    readonly update: ReferenceUpdate,
  ) {
    super(
      `agency update ${update.id}: ${field} "${value}" is not in the agency mapping ` +
        `(mappings/agency/<connector>.yaml ${field === 'status' ? 'statuses' : 'reasons'})`,
    );
    this.name = 'UnmappedValueError';
  }
}

/** Own keys only: a raw value such as `constructor` must not resolve through the prototype. */
function lookup<T>(table: Record<string, T>, raw: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(table, raw) ? table[raw] : undefined;
}

/** ISO 8601 with any offset → UTC `…Z`, so ordering by string compares instants. */
function toUtc(iso: string): string {
  return new Date(iso).toISOString();
}

export function normalizeUpdate(raw: ReferenceUpdate, mapping: AgencyMapping): AgencyUpdate {
  const status = lookup(mapping.statuses, raw.status);
  if (status === undefined) throw new UnmappedValueError('status', raw.status, raw);

  let reason: AgencyUpdate['reason'];
  if (raw.reason != null) {
    reason = lookup(mapping.reasons, raw.reason);
    if (reason === undefined) throw new UnmappedValueError('reason', raw.reason, raw);
  }

  const update: AgencyUpdate = {
    id: raw.id,
    seq: raw.seq,
    caseId: raw.caseId,
    caseReference: raw.caseReference,
    claimReference: raw.claimReference,
    status,
    occurredAt: toUtc(raw.occurredAt),
  };
  if (reason !== undefined) update.reason = reason;
  if (raw.amountCollected != null) update.amountCollected = { ...raw.amountCollected };
  if (raw.arrangement != null) {
    update.arrangement = {
      installments: raw.arrangement.installments,
      amount: { ...raw.arrangement.amount },
      firstDueAt: toUtc(raw.arrangement.firstDueAt),
    };
  }
  if (raw.note != null) update.note = raw.note;
  return update;
}
