/**
 * The figures of a fault run (events, faults injected, lost, duplicated) for RELIABILITY.md:
 * printed, and kept in test-output/faults/<name>.json (git-ignored) as the last run's record.
 */
import fs from 'node:fs';
import path from 'node:path';

export function recordFigures(name: string, figures: Record<string, unknown>): void {
  const dir = path.resolve(__dirname, '../../../test-output/faults');
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify({ at: new Date().toISOString(), ...figures }, null, 2)}\n`);
  } catch {
    // Figures are a report, not a result: a read-only checkout must not fail the run.
  }
  process.stdout.write(`[faults] ${name}: ${JSON.stringify(figures)}\n`);
}
