/**
 * Everything the bench starts or creates registers how to undo it here, so a normal end, an
 * error and Ctrl-C all stop the same child processes and remove the same databases and files.
 */
export type Undo = () => Promise<void> | void;

export class Cleanup {
  private readonly stack: { what: string; undo: Undo }[] = [];
  /** Undo steps started on their own (by the function add() returns) and not finished yet. */
  private readonly inFlight = new Set<Promise<void>>();
  private running: Promise<void> | null = null;

  /** Register an undo step; returns a function that runs (and forgets) just that step. */
  add(what: string, undo: Undo): () => Promise<void> {
    const entry = { what, undo };
    this.stack.push(entry);
    const runNow = async () => {
      const i = this.stack.indexOf(entry);
      if (i < 0) return;
      this.stack.splice(i, 1);
      const p = Promise.resolve().then(entry.undo);
      const tracked = p.then(
        () => undefined,
        () => undefined,
      );
      this.inFlight.add(tracked);
      try {
        await p;
      } finally {
        this.inFlight.delete(tracked);
      }
    };
    // Registered while everything is being undone (an interrupted phase still starting things):
    // undo it at once, and runAll waits for it.
    if (this.running) void runNow().catch(() => undefined);
    return runNow;
  }

  /**
   * Undo everything, newest first; one failing step does not stop the others. Resolves only once
   * the steps already running on their own have finished too, so exiting after it loses nothing.
   */
  runAll(log: (line: string) => void = () => undefined): Promise<void> {
    if (!this.running) {
      this.running = (async () => {
        while (this.stack.length || this.inFlight.size) {
          const next = this.stack.pop();
          if (!next) {
            await Promise.all([...this.inFlight]);
            continue;
          }
          try {
            await next.undo();
          } catch (err) {
            log(`cleanup: ${next.what}: ${(err as Error).message}`);
          }
        }
        this.running = null;
      })();
    }
    return this.running;
  }
}
