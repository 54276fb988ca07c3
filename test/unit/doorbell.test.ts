/**
 * The queue as a doorbell (src/outbox/batch.ts, issue 14): due process_event items of one commit
 * become one message per lane — the newest row's — while items due later and other kinds keep
 * their own.
 */
import { doorbell } from '../../src/outbox/batch';
import type { DispatchItem } from '../../src/outbox/outbox';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const item = (id: number, kind: DispatchItem['kind'], dueInMs = 0, lane = 'hub'): DispatchItem => ({ id, lane, kind, dueAt: new Date(NOW + dueInMs), attempt: 0 });

describe('doorbell', () => {
  it('rings once per lane for the due rows of a doorbell kind, with the newest row', () => {
    const out = doorbell([item(5, 'process_event'), item(9, 'process_event'), item(7, 'process_event')], NOW);
    expect(out).toEqual([item(9, 'process_event')]);
  });

  it('keeps a row due later as its own message (it wakes the loop at its time)', () => {
    const out = doorbell([item(5, 'process_event'), item(6, 'process_event', 2000)], NOW);
    expect(out.map((x) => x.id).sort()).toEqual([5, 6]);
  });

  it('leaves other kinds, and items without a kind, one message each', () => {
    const input = [item(1, 'handover_check'), item(2, 'handover_check'), item(3, 'agency.create_case', 0, 'partner.refagency'), { id: 4, lane: 'hub', dueAt: new Date(NOW), attempt: 0 }];
    expect(doorbell(input, NOW)).toEqual(input);
  });

  it('rings once per kind: a commit of events and agency updates is one message for each batch loop', () => {
    const out = doorbell([item(1, 'process_event'), item(2, 'apply_update'), item(3, 'process_event'), item(4, 'apply_update')], NOW);
    expect(out.map((x) => [x.id, x.kind]).sort()).toEqual([[3, 'process_event'], [4, 'apply_update']]);
  });

  it('an empty list stays empty', () => {
    expect(doorbell([], NOW)).toEqual([]);
  });
});
