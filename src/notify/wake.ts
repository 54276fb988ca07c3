/**
 * The notification scanner woken by the work it scans (issue 14): every status change is a
 * status_history row, read by the scanner (./scanner.ts) — which used to run only with the
 * reconciler, every `delivery.reconcileEverySeconds`, so a merchant heard of a change up to that
 * late. The runner now calls `wake()` after each commit of its work (RunnerHooks.afterCommit); a
 * wake-up scans at most once per `minGapMs`, never two scans at once (one more runs after the
 * current one when woken meanwhile), and never re-checks flag windows (the interval's pass does).
 * The reconciler's pass stays the safety net (a commit of the api process does not wake a worker).
 */
export interface ScannerWake {
  wake(): void;
  stop(): void;
}

export function scannerWake(scan: () => Promise<unknown>, minGapMs = 100): ScannerWake {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  let lastStart = 0;

  function run(): void {
    timer = null;
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    lastStart = Date.now();
    running = scan()
      .then(() => undefined, () => undefined)
      .finally(() => {
        running = null;
        if (again && !stopped) {
          again = false;
          wake();
        }
      });
  }

  function wake(): void {
    if (stopped || timer) return;
    timer = setTimeout(run, Math.max(0, lastStart + minGapMs - Date.now()));
    timer.unref();
  }

  return {
    wake,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
