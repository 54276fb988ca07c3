/** Outcomes a stage can signal to the outbox runner besides success. */

/** Not a failure: the work cannot run yet (e.g. the case is not at the agency yet). Try again after `delayMs`. */
export class Defer extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'Defer';
  }
}

/** The work can never succeed as it stands (bad data); dead-letter it at once. */
export class Permanent extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Permanent';
  }
}
