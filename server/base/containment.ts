/**
 * Containment of client-supplied data outside a message handler.
 *
 * A message handler has its own try/catch (room.receive): a bad message closes its
 * connection. But client data also runs later, on timers and in the background: the
 * presence flush encodes every state, the relay merges updates, a load integrates and
 * garbage-collects what was stored, compaction and history encode the document, webhooks
 * read its text, backups and reverts rebuild it, cluster catch-up applies another
 * process's log. An exception on one of those paths must end at most that connection or
 * mark that one room as failed; it must never reach the event loop (which ends the
 * process) and never go unnoticed. Each such path reports what it caught here: one log
 * line (`event: 'contained_error'`, with the path) and `coedit_errors_total{kind=<path>}`.
 *
 * Fault injection: a test names paths in `inject` (the `faults` option of startServer),
 * each either a path (`relay`: every room) or a path and one room (`relay:victim`);
 * `check(path, room)` then throws an `InjectedFault` at that point of the path, so a test
 * can prove the path is contained without having to find a real input that breaks it,
 * while a canary room on the same path keeps working.
 */
import type { Logger } from 'pino'

/** Every contained path, by the name it is logged and counted under. */
export const CONTAINED_PATHS = [
  'presence_flush',
  'relay',
  'room_load',
  'room_integrate',
  'compaction',
  'history',
  'webhook',
  'backup',
  'revert',
  'cluster_catch_up',
  'hook',
] as const
export type ContainedPath = (typeof CONTAINED_PATHS)[number]
/** A fault to inject: a path everywhere, or `path:room` for one room only. */
export type FaultSpec = ContainedPath | `${ContainedPath}:${string}`

/** Thrown by `check` on an injected path. */
export class InjectedFault extends Error {
  readonly path: ContainedPath
  constructor(path: ContainedPath) {
    super(`injected fault on ${path}`)
    this.name = 'InjectedFault'
    this.path = path
  }
}

export interface Containment {
  /** Logs and counts an exception that `path` caught. Never throws. */
  report(path: ContainedPath, err: unknown, context?: Record<string, unknown>): void
  /** Throws an InjectedFault if `path` (for `room`) is injected (tests); otherwise does nothing. */
  check(path: ContainedPath, room?: string): void
  /** True if `check` would throw: for a path that must raise the fault elsewhere (a worker thread). */
  injected(path: ContainedPath, room?: string): boolean
  /** Some fault is injected (tests): hot paths skip even computing `check`'s arguments otherwise. */
  readonly injecting: boolean
  /** Runs `fn`; an exception is reported and `undefined` returned instead. */
  run<T>(path: ContainedPath, fn: () => T, context?: Record<string, unknown>): T | undefined
}

export interface ContainmentOptions {
  log: Logger
  /** Counts a caught exception (metrics: coedit_errors_total{kind=path}). */
  count?: (path: ContainedPath) => void
  /** Paths where `check` throws (fault injection for tests). */
  inject?: Iterable<FaultSpec>
}

export function createContainment(options: ContainmentOptions): Containment {
  const faults = new Set<string>(options.inject ?? [])
  const injected = (path: ContainedPath, room?: string): boolean =>
    faults.size > 0 && (faults.has(path) || (room !== undefined && faults.has(`${path}:${room}`)))
  const report = (path: ContainedPath, err: unknown, context?: Record<string, unknown>): void => {
    try {
      options.count?.(path)
      options.log.error({ event: 'contained_error', path, ...context, err: describe(err) }, `error contained on ${path}`)
    } catch {
      // Reporting must not become the next uncaught exception (a logger that throws, say).
    }
  }
  const check = faults.size === 0
    ? (): void => {}
    : (path: ContainedPath, room?: string): void => { if (injected(path, room)) throw new InjectedFault(path) }
  return {
    report,
    check,
    injected,
    injecting: faults.size > 0,
    run<T>(path: ContainedPath, fn: () => T, context?: Record<string, unknown>): T | undefined {
      try {
        return fn()
      } catch (err) {
        report(path, err, context)
        return undefined
      }
    },
  }
}

/** The containment as one room's parts see it: faults of that room apply, reports name it. */
export function forRoom(containment: Containment, room: string): Containment {
  return {
    report: (path, err, context) => containment.report(path, err, { room, ...context }),
    check: (path, r = room) => containment.check(path, r),
    injected: (path, r = room) => containment.injected(path, r),
    injecting: containment.injecting,
    run: (path, fn, context) => containment.run(path, fn, { room, ...context }),
  }
}

/** A RangeError from a stack overflow has a huge stack; the message is what a reader needs. */
function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`
  return String(err)
}
