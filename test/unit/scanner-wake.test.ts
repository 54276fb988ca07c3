/**
 * The scanner's wake-up (src/notify/wake.ts): many wake-ups in a burst are one scan; a wake-up while
 * a scan runs is one more scan after it, never two at once; after stop nothing runs.
 */
import { scannerWake } from '../../src/notify/wake';
import { waitFor } from '../support/services';

function scans() {
  let running = 0;
  let maxAtOnce = 0;
  let calls = 0;
  let release: (() => void)[] = [];
  const scan = () => {
    calls++;
    running++;
    maxAtOnce = Math.max(maxAtOnce, running);
    return new Promise<void>((resolve) => release.push(() => { running--; resolve(); }));
  };
  return {
    scan,
    calls: () => calls,
    maxAtOnce: () => maxAtOnce,
    finishAll() {
      const r = release;
      release = [];
      for (const f of r) f();
    },
  };
}

it('a burst of wake-ups is one scan; wake-ups during it are one more scan after it; never two at once', async () => {
  const s = scans();
  const w = scannerWake(s.scan, 10);
  for (let i = 0; i < 50; i++) w.wake();
  await waitFor(async () => s.calls() === 1, 2000, 5, 'the first scan');
  for (let i = 0; i < 50; i++) w.wake();
  s.finishAll();
  await waitFor(async () => s.calls() === 2, 2000, 5, 'one more scan');
  s.finishAll();
  // Settled: nothing was woken since, so nothing more runs (the next wake-up would).
  w.wake();
  await waitFor(async () => s.calls() === 3, 2000, 5, 'a later wake-up scans again');
  s.finishAll();
  expect(s.maxAtOnce()).toBe(1);
  w.stop();
});

it('after stop a wake-up scans nothing', async () => {
  const s = scans();
  const w = scannerWake(s.scan, 0);
  w.stop();
  w.wake();
  // The control: a second wake handle over the same scan does run, so the first one had its chance.
  const control = scannerWake(s.scan, 0);
  control.wake();
  await waitFor(async () => s.calls() === 1, 2000, 5, 'the control scan');
  s.finishAll();
  control.stop();
  expect(s.calls()).toBe(1);
});
