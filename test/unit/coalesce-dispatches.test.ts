/**
 * The coalescing dispatch wrapper (src/queue/dispatcher.ts): dispatches made within its window go
 * to the wrapped dispatcher in one call, a caller that awaits still learns when its items were
 * handed over, and pending()/close() never report drained while items sit in the buffer.
 */
import { coalesceDispatches, type Dispatcher } from '../../src/queue/dispatcher';
import type { DispatchItem } from '../../src/outbox/outbox';

const item = (id: number, lane = 'hub'): DispatchItem => ({ id, lane, dueAt: new Date(0), attempt: 0 });

function fake(opts: { fail?: boolean; slowMs?: number } = {}) {
  const calls: DispatchItem[][] = [];
  let queued = 0;
  let closed = false;
  const d: Dispatcher = {
    kind: 'bullmq',
    async dispatch(items) {
      if (opts.slowMs) await new Promise((r) => setTimeout(r, opts.slowMs));
      calls.push(items);
      if (opts.fail) throw new Error('redis away');
      queued += items.length;
    },
    async startWorkers() {},
    async close() {
      closed = true;
    },
    async ping() {},
    async pending() {
      return queued;
    },
  };
  return { d, calls, isClosed: () => closed };
}

describe('coalesceDispatches', () => {
  it('hands the dispatches of one window to the wrapped dispatcher in one call', async () => {
    const inner = fake();
    const d = coalesceDispatches(inner.d, { windowMs: 20 });
    const a = d.dispatch([item(1)]);
    const b = d.dispatch([item(2), item(3, 'partner.x')]);
    expect(inner.calls).toEqual([]); // nothing yet: the window is open
    await Promise.all([a, b]);
    expect(inner.calls).toEqual([[item(1), item(2), item(3, 'partner.x')]]);
    await d.dispatch([item(4)]);
    expect(inner.calls).toHaveLength(2);
  });

  it('resolves an awaiting caller only once its items were handed over', async () => {
    const inner = fake({ slowMs: 30 });
    const d = coalesceDispatches(inner.d, { windowMs: 1 });
    let done = false;
    const p = d.dispatch([item(1)]).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(done).toBe(false);
    await p;
    expect(inner.calls).toEqual([[item(1)]]);
  });

  it('hands over at once when the buffer is full', async () => {
    const inner = fake();
    const d = coalesceDispatches(inner.d, { windowMs: 10_000, maxItems: 3 });
    await d.dispatch([item(1), item(2), item(3)]);
    expect(inner.calls).toEqual([[item(1), item(2), item(3)]]);
  });

  it('counts what it still buffers in pending(), and close() hands it over before closing', async () => {
    const inner = fake();
    const d = coalesceDispatches(inner.d, { windowMs: 10_000 });
    void d.dispatch([item(1), item(2)]);
    expect(await d.pending()).toBe(2);
    void d.dispatch([item(3)]);
    await d.close();
    expect(inner.calls.flat().map((x) => x.id)).toEqual([1, 2, 3]);
    expect(inner.isClosed()).toBe(true);
  });

  it('never rejects, even when the wrapped dispatcher does (the reconciler catches up)', async () => {
    const inner = fake({ fail: true });
    const d = coalesceDispatches(inner.d, { windowMs: 1 });
    await expect(d.dispatch([item(1)])).resolves.toBeUndefined();
    expect(inner.calls).toHaveLength(1);
  });
});
