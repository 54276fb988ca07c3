/**
 * What every stage of the hub gets: config, database, queue, clock, logger, metrics, and the
 * connectors built for each merchant and partner. Built once by createHub().
 */
import type { HubConfig, PartnerSettings } from './config/load';
import type { Database, Sql } from './store/db';
import type { Dispatcher } from './queue/dispatcher';
import type { Clock } from './domain/clock';
import type { Logger } from './observability/logger';
import type { Metrics } from './observability/metrics';
import type { PspMapping, AgencyMapping } from './mappings/types';
import type { AgencyClient, HubTokenSigner } from '../connectors/agency/types';
import { addToOutbox, type DispatchItem, type OutboxInput } from './outbox/outbox';
import { doorbell } from './outbox/batch';
import type { IdentifierHasher } from './screening/identifiers';

export type MerchantSettings = HubConfig['merchants'][number];

export interface PartnerRuntime {
  settings: PartnerSettings;
  client: AgencyClient;
  mapping: AgencyMapping;
}

/** Collects outbox rows inside a transaction; they are dispatched only after it commits. */
export interface OutboxWriter {
  add(row: OutboxInput): Promise<void>;
}

export interface HubContext {
  config: HubConfig;
  db: Database;
  dispatcher: Dispatcher;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  merchants: Map<string, MerchantSettings>;
  partners: Map<string, PartnerRuntime>;
  pspMappings: Map<string, PspMapping>;
  signer: HubTokenSigner & { jwks(): { keys: object[] } };
  /** Hashes screening identifiers with hub.identifierHashSecret (src/screening/identifiers.ts). */
  identifiers: IdentifierHasher;
  /**
   * Run fn in a transaction; the outbox rows it adds are handed to the queue once it has committed,
   * without waiting for the queue (see dispatchCommitted).
   */
  commit<T>(fn: (sql: Sql, outbox: OutboxWriter) => Promise<T>): Promise<T>;
  /**
   * Like commit, but the transaction may be shared with other callers' (a group commit:
   * src/outbox/commit-group.ts). Only for work that writes, or reads nothing another caller writes.
   * Absent (a test's context): commit is used.
   */
  commitShared?<T>(fn: (sql: Sql, outbox: OutboxWriter) => Promise<T>): Promise<T>;
}

/**
 * Hand committed outbox rows to the queue without waiting for it. The rows are the truth: if the
 * queue is slow, down or loses them, the reconciler (outbox/runner.ts) dispatches due rows again,
 * so the caller — a webhook waiting for its 2xx — need not wait for Redis. The in-process queue
 * takes them synchronously, so in embedded mode they are queued when this returns. Never throws.
 */
export function dispatchCommitted(dispatcher: Dispatcher, items: DispatchItem[]): void {
  if (!items.length) return;
  try {
    dispatcher.dispatch(doorbell(items)).catch(() => undefined);
  } catch {
    // A dispatcher must not throw (dispatcher.ts); if one does, the reconciler still has the rows.
  }
}

export function makeCommit(db: Database, dispatcher: Dispatcher, clock: Clock) {
  return async function commit<T>(fn: (sql: Sql, outbox: OutboxWriter) => Promise<T>): Promise<T> {
    const items: DispatchItem[] = [];
    const out = await db.tx(async (sql) => {
      items.length = 0; // a retried transaction starts clean
      const writer: OutboxWriter = {
        async add(row) {
          const item = await addToOutbox(sql, row, clock.now());
          if (item) items.push(item);
        },
      };
      return fn(sql, writer);
    });
    dispatchCommitted(dispatcher, items);
    return out;
  };
}
