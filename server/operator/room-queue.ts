/**
 * Work on a room that must not interleave with other work of its kind on the same room,
 * run one at a time per room, in the order asked. Reverts use it (issue 18): each reads the
 * room, computes the change that brings back an older state and applies it; two at once
 * would both compute against the same state and apply a mix of both.
 */
export class RoomQueue {
  private readonly tails = new Map<string, Promise<unknown>>()

  /** Runs `run` after everything queued for `room` settled; its result is `run`'s. */
  run<T>(room: string, run: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(room) ?? Promise.resolve()).catch(() => {}).then(run)
    this.tails.set(room, result)
    void result.catch(() => {}).then(() => {
      if (this.tails.get(room) === result) this.tails.delete(room)
    })
    return result
  }
}
