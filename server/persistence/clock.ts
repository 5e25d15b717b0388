/**
 * The time a store stamps on what it stores. Never decreasing: the history log answers
 * "the room at T" with a prefix of the log, so a wall clock stepping back (NTP) must not
 * put a later update before an earlier one.
 */
export class StoreClock {
  private last = 0

  /** `now`: the wall clock, or a test's. */
  constructor(private readonly now: () => number = Date.now) {}

  stamp(): number {
    this.last = Math.max(this.last, Math.floor(this.now()))
    return this.last
  }
}
