/**
 * Coalescing of unsigned webhooks (issue 13 item 3). A Mollie classic webhook carries only
 * `id=tr_…` and no signature (Mollie's model: the receiver fetches the payment with its API key),
 * so anyone can post one, and Mollie itself posts the same id once per status change. Each stored
 * delivery costs a fetch from Mollie's API; a burst of posts for one id would cost one fetch each.
 *
 * Deliveries for the same (merchant, provider, key) within `windowMs` of the first one become ONE
 * stored event (`<key>:<window start ms>`, deduplicated by the inbound_events unique key) whose
 * processing — and so the fetch — is due at the window's end. The fetch therefore starts after
 * every delivery it stands for had arrived, and sees a state at least as new as each of them: a
 * status change announced inside the window is never lost. A delivery after the window starts a
 * new one.
 *
 * The windows are this process's memory (several api processes: at most one event per process per
 * window). Pure apart from the map it keeps; `now` is passed in.
 */
export interface CoalescedWindow {
  /** The stored event's id: the same for every delivery in the window. */
  providerEventId: string;
  /** When the event is processed (the fetch): the window's end. */
  dueAt: Date;
}

const MAX_KEYS = 50_000;

export class UnsignedCoalescer {
  private readonly starts = new Map<string, number>();

  constructor(readonly windowMs: number) {}

  window(merchantId: string, provider: string, key: string, nowMs: number): CoalescedWindow {
    const mapKey = `${merchantId}\u0000${provider}\u0000${key}`;
    let start = this.starts.get(mapKey);
    if (start === undefined || nowMs >= start + this.windowMs) {
      if (this.starts.size >= MAX_KEYS) this.evict(nowMs);
      start = nowMs;
      this.starts.set(mapKey, start);
    }
    return { providerEventId: `${key}:${start}`, dueAt: new Date(start + this.windowMs) };
  }

  get size(): number {
    return this.starts.size;
  }

  /** Forget windows that have ended (forgetting them changes nothing); then the oldest. */
  private evict(nowMs: number): void {
    for (const [k, start] of this.starts) if (nowMs >= start + this.windowMs) this.starts.delete(k);
    let over = this.starts.size - Math.floor(MAX_KEYS * 0.9);
    for (const k of this.starts.keys()) {
      if (over-- <= 0) break;
      this.starts.delete(k);
    }
  }
}
