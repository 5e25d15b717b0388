/**
 * Room history: the server records a version (the room's whole state) of every loaded
 * room that changed, once per `historyInterval` and whenever a room is compacted (which
 * includes unloading), and thins old versions out by a retention policy: fine-grained
 * recent history, coarser older history, nothing past the last tier. So a room keeps at
 * most `retentionBound(tiers)` versions however long it is edited.
 */
import * as Y from 'yjs'
import type { Logger } from 'pino'
import { UsageError } from '../errors.js'
import { parseDuration } from './duration.js'
import { isHistoryLogStore, isRoomDeleted, isVersionedStore, type HistoryLogStore, type Store, type VersionInfo, type VersionedStore } from '../persistence/store.js'
import { createContainment, type Containment } from '../base/containment.js'
import { foldLogBefore } from './history-log.js'
import { RoomQueue } from './room-queue.js'

/** Versions younger than `age` are kept one per `every` (the newest of each such slot). */
export interface RetentionTier {
  age: number
  every: number
}

export const DEFAULT_RETENTION = '1h:1m,1d:10m,7d:1h,30d:1d'

/** A duration as every other option takes it (unit required), of at least a second. */
function parseSpan(text: string, what: string): number {
  let ms: number
  try {
    ms = parseDuration(text)
  } catch (err) {
    throw new UsageError(`history retention: ${(err as Error).message}`)
  }
  if (ms < 1000) throw new UsageError(`history retention: "${text}" is not a ${what} of at least 1s (examples: 30s, 10m, 2h, 7d, 4w)`)
  return ms
}

/** `1h:1m,1d:10m,7d:1h,30d:1d`: AGE:EVERY tiers, ages increasing. Throws UsageError. */
export function parseRetention(text: string): RetentionTier[] {
  const tiers = text.split(',').map((part) => {
    const [age, every, extra] = part.split(':')
    if (age === undefined || every === undefined || extra !== undefined) {
      throw new UsageError(`history retention: "${part}" is not AGE:EVERY (example: ${DEFAULT_RETENTION})`)
    }
    return { age: parseSpan(age, 'duration'), every: parseSpan(every, 'duration') }
  })
  tiers.forEach((t, i) => {
    if (t.every > t.age) throw new UsageError(`history retention: in "${text}", a tier keeps one version per at most its age`)
    if (i > 0 && t.age <= tiers[i - 1]!.age) throw new UsageError(`history retention: in "${text}", tier ages must increase`)
  })
  return tiers
}

/** The most versions a room can hold under `tiers` (each tier's slots, the newest included). */
export function retentionBound(tiers: readonly RetentionTier[]): number {
  let bound = 0
  let from = 0
  for (const t of tiers) {
    bound += Math.floor((t.age - from) / t.every) + 1
    from = t.age
  }
  return bound
}

/**
 * Ids of the versions the policy drops at `now`: past the last tier, or not the newest of
 * their slot. A pinned version (the state just before a revert) is kept while it is younger
 * than `pinnedFor` ms (the exact window), whatever its slot.
 */
export function versionsToDrop(versions: readonly VersionInfo[], tiers: readonly RetentionTier[], now: number, pinnedFor = 0): number[] {
  const newestFirst = [...versions].sort((a, b) => b.at - a.at || b.id - a.id)
  const seen = new Set<string>()
  const drop: number[] = []
  newestFirst.forEach((v, i) => {
    if (i === 0) return // the newest version is always kept
    const age = now - v.at
    if (v.pinned && age <= pinnedFor) return
    const tier = tiers.findIndex((t) => age <= t.age)
    if (tier < 0) {
      drop.push(v.id)
      return
    }
    const slot = `${tier}:${Math.floor(v.at / tiers[tier]!.every)}`
    if (seen.has(slot)) drop.push(v.id)
    else seen.add(slot)
  })
  return drop
}

/** What the keeper needs of a loaded room. */
export interface HistoryRoom {
  readonly name: string
  /** The store's generation the room was loaded from: its versions are written for that one only (absent: not checked). */
  readonly generation?: number
  readonly doc: Y.Doc
  readonly lastApplied: number
  readonly isDestroyed: boolean
}

export interface HistoryOptions {
  /** Record changed rooms this often (ms). */
  interval: number
  retention: readonly RetentionTier[]
  log: Logger
  /** The clock (tests inject one). */
  now?: () => number
  /** Where an exception encoding a room's state is reported (default: logged only). */
  containment?: Containment
  /**
   * The exact window (ms, issue 18): the history log keeps this much, older entries are
   * folded into its base; versions pinned by a revert are kept this long. Default 0.
   */
  exactWindow?: number
}

export class HistoryKeeper {
  private readonly store: VersionedStore | undefined
  private readonly logStore: HistoryLogStore | undefined
  /** When each room's log was last folded (folds are throttled to one per interval). */
  private readonly foldedAt = new Map<string, number>()
  private readonly options: HistoryOptions
  private readonly now: () => number
  private readonly containment: Containment
  /** Sequence number of each room's newest version (rooms seen since start). */
  private readonly recordedSeq = new Map<string, number>()
  /** When a version of each room was last asked for (throttles versions at compaction). */
  private readonly recordedAt = new Map<string, number>()
  private readonly chains = new Map<string, Promise<void>>()
  private timer: NodeJS.Timeout | undefined
  private rooms: () => Iterable<HistoryRoom> = () => []
  /** Reverts of a room, one at a time whichever way they came in (admin API, CLI, editor's panel). */
  readonly reverts = new RoomQueue()

  constructor(store: Store, options: HistoryOptions) {
    this.store = isVersionedStore(store) ? store : undefined
    this.logStore = isHistoryLogStore(store) ? store : undefined
    this.options = options
    this.now = options.now ?? Date.now
    this.containment = options.containment ?? createContainment({ log: options.log })
  }

  /** False for a store without versions (cluster mode): history is then off. */
  get enabled(): boolean {
    return this.store !== undefined
  }

  /** Starts recording the rooms `rooms()` lists every `interval`. */
  start(rooms: () => Iterable<HistoryRoom>): void {
    this.rooms = rooms
    if (!this.store || this.timer) return
    this.timer = setInterval(() => void this.tick(), this.options.interval)
    this.timer.unref()
  }

  /** Records a version of every loaded room that changed since its last one. */
  async tick(): Promise<void> {
    const due: Promise<unknown>[] = []
    for (const room of this.rooms()) {
      if (room.isDestroyed) continue
      due.push(this.foldLog(room.name))
      const seq = room.lastApplied
      if (seq === 0 || seq === this.recordedSeq.get(room.name)) continue
      // On a timer, over documents clients wrote: an exception skips this room's version.
      const state = this.containment.run('history', () => {
        this.containment.check('history', room.name)
        return Y.encodeStateAsUpdate(room.doc)
      }, { room: room.name })
      if (state) due.push(this.record(room.name, state, seq, { generation: room.generation }))
    }
    await Promise.all(due)
  }

  /**
   * Room hook: a room folded its log into `state` (`final`: it is unloading, its last word).
   * A busy room folds every few hundred updates (dozens of times a second under a fast
   * writer); a version each time would store the whole document that often, only for the
   * retention policy to keep one a slot. So a fold becomes a version only when the room has
   * none from the last `interval` (the tick records changed rooms meanwhile), or at unload.
   */
  readonly compacted = (room: { name: string; generation?: number }, state: Uint8Array, upTo: number, final = false): void => {
    this.foldLog(room.name)
    const last = this.recordedAt.get(room.name)
    if (!final && last !== undefined && this.now() - last < this.options.interval) return
    void this.record(room.name, state, upTo, { generation: room.generation })
  }

  /**
   * Folds the part of `room`'s history log older than the exact window into its base, at
   * most once per interval per room (a fold integrates what it folds: not at every
   * compaction of a busy room). Runs on the room's chain, after versions being written.
   */
  foldLog(room: string): Promise<void> {
    const store = this.logStore
    if (!store) return Promise.resolve()
    const now = this.now()
    const last = this.foldedAt.get(room)
    if (last !== undefined && now - last < this.options.interval) return Promise.resolve()
    this.foldedAt.set(room, now)
    return this.onChain(room, async () => {
      await foldLogBefore(store, room, now - (this.options.exactWindow ?? 0))
      return undefined
    }).then(() => {})
  }

  /**
   * Records `state` (the room through `seq`) unless the newest version already holds that
   * seq, then prunes. Never rejects: history must not break serving. Resolves to the
   * version recorded, if any. `generation`: the room's generation `state` was read from (a
   * version of a room deleted since is not recorded).
   */
  record(room: string, state: Uint8Array, seq: number, options: { pinned?: boolean; generation?: number } = {}): Promise<VersionInfo | undefined> {
    const store = this.store
    if (!store) return Promise.resolve(undefined)
    this.recordedAt.set(room, this.now())
    return this.onChain(room, async () => {
      let last = this.recordedSeq.get(room)
      if (last === undefined) {
        const versions = await store.listVersions(room)
        last = versions.length > 0 ? versions[versions.length - 1]!.seq : -1
      }
      // A pinned version is recorded even if the newest has its seq: that one may be thinned out.
      if (seq === last && !options.pinned) {
        this.recordedSeq.set(room, seq)
        return undefined
      }
      const info = await store.putVersion(room, { at: this.now(), seq, state, ...(options.pinned ? { pinned: true } : {}) }, { generation: options.generation })
      this.recordedSeq.set(room, seq)
      await this.prune(room)
      return info
    })
  }

  /** Runs `run` after everything queued for `room`; never rejects (history must not break serving). */
  private onChain(room: string, run: () => Promise<VersionInfo | undefined>): Promise<VersionInfo | undefined> {
    const result = (this.chains.get(room) ?? Promise.resolve()).then(run).catch((err: unknown) => {
      // A version or fold of a copy of the room that was deleted meanwhile: nothing to keep.
      if (isRoomDeleted(err)) this.options.log.debug({ event: 'history_skipped', room, code: 'ROOM_DELETED' }, 'the room was deleted: history not written')
      else this.options.log.error({ event: 'history_failed', room, err: String(err) }, 'writing history failed')
      return undefined
    })
    const tail = result.then(() => {})
    this.chains.set(room, tail)
    void tail.then(() => {
      if (this.chains.get(room) === tail) this.chains.delete(room)
    })
    return result
  }

  /** Drops what the retention policy no longer keeps. */
  async prune(room: string): Promise<void> {
    if (!this.store) return
    const drop = versionsToDrop(await this.store.listVersions(room), this.options.retention, this.now(), this.options.exactWindow ?? 0)
    if (drop.length > 0) await this.store.deleteVersions(room, drop)
  }

  /** Forgets what it knew of `room` (its versions were replaced by a restore, or deleted). */
  forget(room: string): void {
    this.recordedSeq.delete(room)
    this.recordedAt.delete(room)
    this.foldedAt.delete(room)
  }

  /** Stops the timer and waits for versions being written. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    while (this.chains.size > 0) await Promise.all([...this.chains.values()])
  }
}
