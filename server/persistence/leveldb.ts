/**
 * LevelDB store (the default). Appends from every room that arrive in the same
 * event-loop turn are written in one atomic batch (group commit): a burst of
 * updates costs one write, not one per update, and ordering is kept because each
 * batch waits for the one before it.
 */
import { Level } from 'level'
import { CoeditError } from '../errors.js'
import type { EventSink } from '../base/events.js'
import type { StoreEvents } from './store.js'
import {
  decodeState, encodeState, metaKey, prefixEnd, seqOfUpdateKey, stateKey, tombstoneKey, unescapeRoom,
  updateKey, updatePrefix,
} from './keys.js'
import { GroupCommit, type Append } from './group-commit.js'
import type {
  AppendMeta, DeleteOptions, DeleteResult, HistoryLog, HistoryLogStore, LogBase, LogEntry, LogRange, RoomInfo, StoredRoom, WriteFence,
} from './store.js'
import { EMPTY_STATE, assertOpen, byName, roomDeletedError } from './store.js'
import { decodeTombstone, isEmptyTombstone, tombstoneOf } from './tombstone.js'
import { StoreClock } from './clock.js'
import {
  addRun, decodeLogBase, decodeMark, encodeLogBase, encodeMark, logBaseKey, markKey, markPrefix, userAt, type Mark, type Run,
} from './log-keys.js'
import { migrate, type RepairedLog } from './leveldb-migrate.js'
import { Reclaimer, type RangeCompactor } from './leveldb-reclaim.js'
import {
  aliasKey, decodeAliases, decodeVersionMeta, encodeAliases, encodeVersionMeta, idOfVersionKey, versionMetaKey, versionMetaPrefix,
  versionStateKey, versionStatePrefix,
} from './version-keys.js'
import type { RoomRecord, StoreSnapshot, StoredVersion, VersionInfo, VersionedStore } from './store.js'

export interface LevelStoreOptions {
  /** fsync every batch: survives power loss, not only a process crash. Default true. */
  sync?: boolean
  /** Where `store.batch` goes: the size and duration of every group commit (metrics). */
  events?: EventSink<StoreEvents>
  /** The clock stamped on stored updates (tests inject one). Default Date.now. */
  now?: () => number
  /**
   * Group commits handed to LevelDB at once (see GroupCommit). Default WRITE_CONCURRENCY (1:
   * each waits for the one before it).
   */
  writeConcurrency?: number
}

/**
 * Batches in LevelDB at once. 1: each group commit takes everything that queued up during
 * the one before, so one fsync covers all of it. More lets a batch wait inside LevelDB
 * instead, at the cost of more, smaller fsyncs (a busy disk falls behind); each waiting
 * write also holds one of libuv's 4 threads.
 */
export const WRITE_CONCURRENCY = 1


/** The readiness probe's key: '!' sorts before every room prefix, so no scan meets it. */
const HEALTH_KEY = '!health'

type BatchOp =
  | { type: 'put'; key: string; value: Uint8Array }
  | { type: 'del'; key: string }

const textEncoder = new TextEncoder()
/** ms between two writes of a room's `updatedAt` (listRooms is that precise). */
const META_INTERVAL = 1000
const textDecoder = new TextDecoder()

type LevelSnapshot = ReturnType<Level<string, Uint8Array>['snapshot']>

export class LevelStore implements VersionedStore, HistoryLogStore {
  private readonly db: Level<string, Uint8Array>
  private readonly sync: boolean
  private readonly events: LevelStoreOptions['events']
  private readonly nextSeq = new Map<string, number>()
  /**
   * Times each room was deleted since the store was opened (absent: 0). Kept in memory: a
   * directory is one process's, so nothing loaded before a restart can write after it.
   */
  private readonly generations = new Map<string, number>()
  private readonly commits: GroupCommit
  /**
   * When each room's `updatedAt` was last written: it is rewritten at most once a second,
   * since with many busy rooms one metadata put per room per batch doubled the batch.
   */
  private readonly metaWrittenAt = new Map<string, number>()
  private closed = false
  private readonly clock: StoreClock
  /** Compacts the key ranges of rooms that rewrote a lot (states, versions, folds): disk space. */
  private readonly reclaimer: Reclaimer

  private constructor(db: Level<string, Uint8Array>, options: LevelStoreOptions) {
    this.db = db
    this.clock = new StoreClock(options.now)
    this.sync = options.sync ?? true
    this.events = options.events
    this.commits = new GroupCommit((batch, numbered) => this.writeBatch(batch, numbered), options.writeConcurrency ?? WRITE_CONCURRENCY)
    // `level` types the browser's API too; under Node it is classic-level, which has compactRange.
    const compactor = db as unknown as Partial<RangeCompactor>
    this.reclaimer = new Reclaimer({ compactRange: (start, end) => compactor.compactRange?.(start, end) ?? Promise.resolve() }, (room) => [
      [stateKey(room), stateKey(room)],
      [logBaseKey(room), logBaseKey(room)],
      ...[updatePrefix(room), markPrefix(room), versionMetaPrefix(room), versionStatePrefix(room)].map((p): [string, string] => [p, prefixEnd(p)]),
    ])
  }

  /** Opens (creating if needed) the database in `dir`; a directory held by another process is a LOCKED error. */
  static async open(dir: string, options: LevelStoreOptions = {}): Promise<LevelStore> {
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new CoeditError('STORE_LOCKED', `data directory ${dir} is in use by another coedit process`, { cause: err })
      }
      throw new CoeditError('STORE_OPEN_FAILED', `cannot open data directory ${dir}: ${(cause as Error | undefined)?.message ?? (err as Error).message}`, { cause: err })
    }
    let repaired: RepairedLog[]
    try {
      repaired = (await migrate(db, Math.floor((options.now ?? Date.now)()))).repaired
    } catch (err) {
      await db.close().catch(() => {})
      throw err instanceof CoeditError ? err : new CoeditError('STORE_MIGRATION_FAILED', `cannot migrate data directory ${dir}: ${(err as Error).message}`, { cause: err })
    }
    const store = new LevelStore(db, options)
    store.repairedLogs = repaired
    return store
  }

  /**
   * Rooms whose history log this open restarted because an older coedit had written them
   * (leveldb-migrate.ts, repairLogs): their instants before the open are no longer exact.
   */
  repairedLogs: readonly RepairedLog[] = []

  /** Refuses (ROOM_DELETED) a write for a generation of `room` that was deleted. */
  private fence(room: string, fence: WriteFence | undefined): void {
    if (fence?.generation !== undefined && fence.generation !== (this.generations.get(room) ?? 0)) throw roomDeletedError(room)
  }

  async load(room: string): Promise<StoredRoom> {
    assertOpen(this.closed)
    const generation = this.generations.get(room) ?? 0
    const updates: Uint8Array[] = []
    let upTo = 0
    const [stored, tombstone] = await this.db.getMany([stateKey(room), tombstoneKey(room)])
    if (stored !== undefined) {
      const decoded = decodeState(stored)
      upTo = decoded.upTo
      updates.push(decoded.state)
    }
    let lastSeq = upTo
    let pendingUpdates = 0
    const prefix = updatePrefix(room)
    // From upTo on: the updates before it that the history log still keeps are not read.
    for await (const [key, value] of this.db.iterator({ gt: updateKey(room, upTo), lt: prefixEnd(prefix) })) {
      const seq = seqOfUpdateKey(key)
      // Left behind by a compaction that stopped between its two steps: already in the state.
      if (seq <= upTo) continue
      updates.push(value)
      lastSeq = seq
      pendingUpdates++
    }
    // A delete that ran while this read did leaves the room at 1: not this stale figure.
    if (!this.nextSeq.has(room) && generation === (this.generations.get(room) ?? 0)) this.nextSeq.set(room, lastSeq + 1)
    return { updates, lastSeq, pendingUpdates, ...(generation > 0 ? { generation } : {}), ...(tombstone !== undefined ? { tombstone } : {}) }
  }

  async append(room: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number> {
    assertOpen(this.closed)
    // Checked at the call, and queued at once: a delete called after this append is written after it.
    this.fence(room, meta)
    return this.commits.add(room, updates, meta)
  }

  private async findNextSeq(room: string): Promise<number> {
    let last = 0
    const stored = await this.db.get(stateKey(room))
    if (stored !== undefined) last = decodeState(stored).upTo
    const prefix = updatePrefix(room)
    for await (const key of this.db.keys({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit: 1 })) {
      last = Math.max(last, seqOfUpdateKey(key))
    }
    return last + 1
  }

  private async writeBatch(batch: readonly Append[], numbered: () => void): Promise<Array<number | Error>> {
    // A room this store has not loaded or written yet: where its sequence stands. Here, in
    // the group commit's order, no other write of the room can run meanwhile.
    for (const room of new Set(batch.map((a) => a.room))) {
      if (typeof this.nextSeq.get(room) !== 'number') this.nextSeq.set(room, await this.findNextSeq(room))
    }
    const results: number[] = []
    const now = this.clock.stamp()
    const firstSeq = new Map<string, number>()
    /** Per room: the next number after this batch's (what a failure checks nobody took since). */
    const lastSeq = new Map<string, number>()
    /** Per room of the batch: who stored its updates, for the one mark it gets (history log). */
    const runs = new Map<string, Run[]>()
    const metaRooms: string[] = []
    // A chained batch: it costs the main thread half what db.batch(array) does (abstract-level
    // copies and checks every op of an array: ~50 vs ~22 µs for 5 puts here), and under load
    // this runs about a thousand times a second.
    const chained = this.db.batch()
    try {
      let count = 0
      for (const { room, updates, meta } of batch) {
        let seq = this.nextSeq.get(room) as number
        if (!firstSeq.has(room)) firstSeq.set(room, seq)
        for (const update of updates) chained.put(updateKey(room, seq++), update)
        let roomRuns = runs.get(room)
        if (!roomRuns) runs.set(room, roomRuns = [])
        addRun(roomRuns, updates.length, meta?.user)
        count += updates.length
        this.nextSeq.set(room, seq)
        lastSeq.set(room, seq)
        results.push(seq - 1)
      }
      for (const [room, roomRuns] of runs) chained.put(markKey(room, (this.nextSeq.get(room) as number) - 1), encodeMark(now, roomRuns))
      for (const room of firstSeq.keys()) {
        if (now - (this.metaWrittenAt.get(room) ?? 0) < META_INTERVAL) continue
        metaRooms.push(room)
        chained.put(metaKey(room), textEncoder.encode(JSON.stringify({ updatedAt: now })))
      }
      const started = performance.now()
      const written = chained.write({ sync: this.sync })
      // Numbered and handed to LevelDB: the next batch may be numbered and join LevelDB's queue.
      numbered()
      await written
      this.events?.emit('store.batch', { updates: count, ms: performance.now() - started })
      for (const room of metaRooms) this.metaWrittenAt.set(room, now)
      return results
    } catch (err) {
      await chained.close().catch(() => {})
      // Nothing of the batch was written (batches are atomic): hand its numbers out again, so
      // a room's sequence stays contiguous, unless a later batch, written concurrently, took
      // the next ones: then they stay unused (a gap; no number is ever given out twice).
      for (const [room, seq] of firstSeq) if (this.nextSeq.get(room) === lastSeq.get(room)) this.nextSeq.set(room, seq)
      throw err
    }
  }

  async compact(room: string, state: Uint8Array, upTo: number, fence?: WriteFence): Promise<void> {
    assertOpen(this.closed)
    this.fence(room, fence)
    // On the room's chain: a delete never runs between its two steps.
    await this.serialized(room, async () => {
      this.fence(room, fence)
      // Two steps, safe to stop between: `load` skips updates the state already holds.
      const chained = this.db.batch()
      chained.put(stateKey(room), encodeState(upTo, state))
      await this.unalias(room, chained)
      await chained.write({ sync: this.sync })
      // The history log keeps the updates it has not folded yet (load no longer reads them).
      const folded = await this.db.get(logBaseKey(room))
      const through = Math.min(upTo, folded === undefined ? 0 : decodeLogBase(folded).upTo)
      if (through > 0) await this.db.clear({ gt: updatePrefix(room), lte: updateKey(room, through) })
      this.reclaimer.wrote(room, state.length, state.length)
    })
  }

  /**
   * Deletes every key of `room` in one batch (and writes its tombstone), on the room's chain
   * after its compactions and version writes in progress, so that none meets it halfway.
   * The room's keys are read first, outside the group commit; then, in a turn of its own
   * among the appends (GroupCommit.exclusive), the few written meanwhile are read and the
   * batch is written: a delete of a long log holds up no other room's appends while it
   * reads. Its generation grows at the call, so appends and other writes made for the old
   * one are refused from that moment.
   */
  async delete(room: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    assertOpen(this.closed)
    const deleted = this.generations.get(room) ?? 0
    this.generations.set(room, deleted + 1)
    return this.serialized(room, async () => {
      const read = await this.roomKeys(room, options.tombstone === true)
      // The clients of the bulk of the log, before the turn that holds up other rooms' appends.
      const bulk = options.tombstone ? tombstoneOf(read.content) : undefined
      return this.commits.exclusive(async () => {
        // Appends written since the first read: only the log's tail and the metadata changed.
        const tail = await this.roomKeys(room, options.tombstone === true, read.after)
        const [state, meta, base, tombstone] = await this.db.getMany([stateKey(room), metaKey(room), logBaseKey(room), tombstoneKey(room)])
        const ops: BatchOp[] = [...read.keys, ...tail.keys].map((key) => ({ type: 'del', key }))
        const existed = ops.length > 0 || state !== undefined || meta !== undefined || base !== undefined || tombstone !== undefined
        for (const key of [stateKey(room), metaKey(room), logBaseKey(room), aliasKey(room)]) ops.push({ type: 'del', key })
        if (bulk) {
          const content = [...tail.content, ...(state ? [decodeState(state).state] : []), ...(base ? [decodeLogBase(base).state] : [])]
          const kept = tombstoneOf(content, tombstone, bulk)
          if (!isEmptyTombstone(kept)) ops.push({ type: 'put', key: tombstoneKey(room), value: kept })
        } else if (tombstone !== undefined) {
          ops.push({ type: 'del', key: tombstoneKey(room) })
        }
        await this.db.batch(ops, { sync: this.sync })
        this.reclaimer.wrote(room, 0)
        this.nextSeq.set(room, 1)
        this.metaWrittenAt.delete(room)
        return { existed, deleted }
      })
    })
  }

  /**
   * The keys of `room` there can be many of: its updates and their marks (past `after`, when
   * given: the tail since an earlier read) and, in a first read, its versions; the updates'
   * bytes when `values`; and where its update and mark keys end.
   */
  private async roomKeys(room: string, values: boolean, after?: { updates: number; marks: number }): Promise<{ keys: string[]; content: Uint8Array[]; after: { updates: number; marks: number } }> {
    const keys: string[] = []
    const content: Uint8Array[] = []
    const end = { ...(after ?? { updates: 0, marks: 0 }) }
    for await (const [key, value] of this.db.iterator({ gt: updateKey(room, end.updates), lt: prefixEnd(updatePrefix(room)), values })) {
      keys.push(key)
      if (values) content.push(value)
      end.updates = seqOfUpdateKey(key)
    }
    for await (const key of this.db.keys({ gt: markKey(room, end.marks), lt: prefixEnd(markPrefix(room)) })) {
      keys.push(key)
      end.marks = seqOfUpdateKey(key)
    }
    // Versions are written on the room's chain, which the delete holds: read once.
    if (!after) {
      for (const prefix of [versionMetaPrefix(room), versionStatePrefix(room)]) {
        for await (const key of this.db.keys({ gt: prefix, lt: prefixEnd(prefix) })) keys.push(key)
      }
    }
    return { keys, content, after: end }
  }

  async listRooms(): Promise<RoomInfo[]> {
    assertOpen(this.closed)
    const rooms = new Map<string, RoomInfo>()
    const info = (escaped: string): RoomInfo => {
      let r = rooms.get(escaped)
      if (!r) {
        r = { name: unescapeRoom(escaped), updates: 0, bytes: 0, updatedAt: undefined, lastSeq: 0 }
        rooms.set(escaped, r)
      }
      return r
    }
    for await (const [key, value] of this.db.iterator({ gt: 'm:', lt: 'm;' })) {
      try {
        info(key.slice(2)).updatedAt = (JSON.parse(textDecoder.decode(value)) as { updatedAt?: number }).updatedAt
      } catch {
        info(key.slice(2))
      }
    }
    const upTos = new Map<string, number>()
    for await (const [key, value] of this.db.iterator({ gt: 's:', lt: 's;' })) {
      const r = info(key.slice(2))
      const { upTo } = decodeState(value)
      upTos.set(key.slice(2), upTo)
      r.bytes += value.length
      r.lastSeq = Math.max(r.lastSeq, upTo)
    }
    for await (const [key, value] of this.db.iterator({ gt: 'u:', lt: 'u;' })) {
      const escaped = key.slice(2, key.lastIndexOf(':'))
      const seq = seqOfUpdateKey(key)
      if (seq <= (upTos.get(escaped) ?? 0)) continue
      const r = info(escaped)
      r.updates++
      r.bytes += value.length
      r.lastSeq = Math.max(r.lastSeq, seq)
    }
    return [...rooms.values()].sort((a, b) => byName(a.name, b.name))
  }

  // ---- versions and backup ---------------------------------------------------------------

  /**
   * A room's writes besides appends (versions, compaction, folds, restore, delete) run one at
   * a time: ids are handed out without races, and a delete never meets one halfway.
   */
  private readonly versionChains = new Map<string, Promise<unknown>>()

  private serialized<T>(room: string, fn: () => Promise<T>): Promise<T> {
    const next = this.chainOf(room).then(fn)
    this.chain(room, next)
    return next
  }

  /** What runs on `room`'s chain now (settles, never rejects). */
  private chainOf(room: string): Promise<unknown> {
    return this.versionChains.get(room) ?? Promise.resolve()
  }

  /** Makes `next` the last of `room`'s chain: later writes of the room wait for it. */
  private chain(room: string, next: Promise<unknown>): void {
    const settled = next.catch(() => {})
    this.versionChains.set(room, settled)
    void settled.then(() => {
      if (this.versionChains.get(room) === settled) this.versionChains.delete(room)
    })
  }

  /**
   * Adds to `batch`, which replaces the room's compacted state, the states of the versions
   * that were stored as that state (see putVersion): in the same atomic write, so no
   * moment exists where such a version has no state.
   */
  private async unalias(room: string, batch: { put(key: string, value: Uint8Array): unknown; del(key: string): unknown }): Promise<void> {
    const [aliases, old] = await this.db.getMany([aliasKey(room), stateKey(room)])
    const ids = decodeAliases(aliases)
    if (aliases === undefined) return
    batch.del(aliasKey(room))
    if (ids.length === 0 || old === undefined) return
    const metas = await this.db.getMany(ids.map((id) => versionMetaKey(room, id)))
    const { state } = decodeState(old)
    ids.forEach((id, i) => { if (metas[i] !== undefined) batch.put(versionStateKey(room, id), state) })
  }

  async putVersion(room: string, version: { at: number; seq: number; state: Uint8Array; pinned?: boolean }, fence?: WriteFence): Promise<VersionInfo> {
    assertOpen(this.closed)
    this.fence(room, fence)
    return this.serialized(room, async () => {
      this.fence(room, fence)
      const prefix = versionMetaPrefix(room)
      let id = 1
      for await (const key of this.db.keys({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit: 1 })) {
        id = idOfVersionKey(key) + 1
      }
      const info: VersionInfo = { id, at: version.at, seq: version.seq, bytes: version.state.length, ...(version.pinned ? { pinned: true } : {}) }
      // A version of the room as compacted (the one recorded at unload, typically) is the
      // compacted state byte for byte: stored once, as an alias that compact() resolves.
      const [stored, aliases] = await this.db.getMany([stateKey(room), aliasKey(room)])
      const compacted = stored === undefined ? undefined : decodeState(stored)
      const same = compacted !== undefined && compacted.upTo === version.seq && Buffer.compare(compacted.state, version.state) === 0
      await this.db.batch([
        same
          ? { type: 'put', key: aliasKey(room), value: encodeAliases([...decodeAliases(aliases), id]) }
          : { type: 'put', key: versionStateKey(room, id), value: version.state },
        { type: 'put', key: versionMetaKey(room, id), value: encodeVersionMeta(info) },
      ], { sync: this.sync })
      if (!same) this.reclaimer.wrote(room, version.state.length)
      return info
    })
  }

  async listVersions(room: string): Promise<VersionInfo[]> {
    assertOpen(this.closed)
    return this.readVersionInfos(room, undefined)
  }

  private async readVersionInfos(room: string, snapshot: LevelSnapshot | undefined): Promise<VersionInfo[]> {
    const prefix = versionMetaPrefix(room)
    const out: VersionInfo[] = []
    for await (const [key, value] of this.db.iterator({ gt: prefix, lt: prefixEnd(prefix), ...(snapshot ? { snapshot } : {}) })) {
      out.push({ id: idOfVersionKey(key), ...decodeVersionMeta(value) })
    }
    return out
  }

  async getVersion(room: string, id: number): Promise<StoredVersion | undefined> {
    assertOpen(this.closed)
    const [meta, state] = await this.db.getMany([versionMetaKey(room, id), versionStateKey(room, id)])
    if (meta === undefined) return undefined
    const info = decodeVersionMeta(meta)
    const found = state ?? await this.aliasedState(room, id, info.seq, undefined)
    return found === undefined ? undefined : { id, ...info, state: found }
  }

  /** The state of version `id` if it is stored as the room's compacted state (see putVersion). */
  private async aliasedState(room: string, id: number, seq: number, snapshot: LevelSnapshot | undefined): Promise<Uint8Array | undefined> {
    const [aliases, stored] = await this.db.getMany([aliasKey(room), stateKey(room)], snapshot ? { snapshot } : {})
    if (stored === undefined || !decodeAliases(aliases).includes(id)) return undefined
    const compacted = decodeState(stored)
    return compacted.upTo === seq ? compacted.state : undefined
  }

  async deleteVersions(room: string, ids: readonly number[]): Promise<void> {
    assertOpen(this.closed)
    if (ids.length === 0) return
    await this.serialized(room, () => this.db.batch(ids.flatMap((id) => [
      { type: 'del' as const, key: versionMetaKey(room, id) },
      { type: 'del' as const, key: versionStateKey(room, id) },
    ]), { sync: this.sync }))
    this.reclaimer.wrote(room, 0)
  }

  /** Reads go through one LevelDB snapshot: writes made after this call are not seen. */
  async snapshot(): Promise<StoreSnapshot> {
    assertOpen(this.closed)
    const snapshot = this.db.snapshot()
    try {
      const names = new Set<string>()
      for (const range of [{ gt: 'm:', lt: 'm;' }, { gt: 's:', lt: 's;' }]) {
        for await (const key of this.db.keys({ ...range, snapshot })) names.add(unescapeRoom(key.slice(2)))
      }
      const rooms = [...names].sort(byName)
      const tombstones = new Map<string, Uint8Array>()
      for await (const [key, value] of this.db.iterator({ gt: 'x:', lt: 'x;', snapshot })) tombstones.set(unescapeRoom(key.slice(2)), value)
      return {
        rooms,
        tombstones,
        read: (room) => this.readRoom(room, snapshot),
        close: () => snapshot.close(),
      }
    } catch (err) {
      await snapshot.close()
      throw err
    }
  }

  private async readRoom(room: string, snapshot: LevelSnapshot): Promise<RoomRecord> {
    const updates: Uint8Array[] = []
    let lastSeq = 0
    const stored = await this.db.get(stateKey(room), { snapshot })
    if (stored !== undefined) {
      const decoded = decodeState(stored)
      lastSeq = decoded.upTo
      updates.push(decoded.state)
    }
    const upTo = lastSeq
    const prefix = updatePrefix(room)
    for await (const [key, value] of this.db.iterator({ gt: updateKey(room, upTo), lt: prefixEnd(prefix), snapshot })) {
      const seq = seqOfUpdateKey(key)
      if (seq <= upTo) continue
      updates.push(value)
      lastSeq = seq
    }
    let updatedAt: number | undefined
    const meta = await this.db.get(metaKey(room), { snapshot })
    if (meta !== undefined) {
      try {
        updatedAt = (JSON.parse(textDecoder.decode(meta)) as { updatedAt?: number }).updatedAt
      } catch {
        updatedAt = undefined
      }
    }
    const versions: StoredVersion[] = []
    for (const info of await this.readVersionInfos(room, snapshot)) {
      const state = await this.db.get(versionStateKey(room, info.id), { snapshot }) ?? await this.aliasedState(room, info.id, info.seq, snapshot)
      if (state !== undefined) versions.push({ ...info, state })
    }
    const log = await this.readLogFrom(room, {}, snapshot)
    // A log cut short by an older coedit's writes is left out: the restore starts a new one.
    return { name: room, updatedAt, lastSeq, updates, versions, ...(log.unmarked === undefined ? { log } : {}) }
  }

  async putTombstone(room: string, tombstone: Uint8Array): Promise<void> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
    decodeTombstone(tombstone)
    await this.serialized(room, () => this.db.put(tombstoneKey(room), tombstone, { sync: this.sync }))
  }

  async putRoom(record: RoomRecord): Promise<void> {
    assertOpen(this.closed)
    await this.serialized(record.name, () => this.putRoomNow(record))
  }

  private async putRoomNow(record: RoomRecord): Promise<void> {
    const room = record.name
    const ops: BatchOp[] = [{ type: 'del', key: tombstoneKey(room) }]
    for (const prefix of [updatePrefix(room), versionMetaPrefix(room), versionStatePrefix(room), markPrefix(room)]) {
      for await (const key of this.db.keys({ gt: prefix, lt: prefixEnd(prefix) })) ops.push({ type: 'del', key })
    }
    ops.push({ type: 'del', key: stateKey(room) })
    ops.push({ type: 'del', key: logBaseKey(room) })
    ops.push({ type: 'del', key: aliasKey(room) })
    const [first, ...rest] = record.updates
    // The first update becomes the compacted state, the rest keep their place in the log.
    const upTo = record.lastSeq - rest.length
    if (first !== undefined) ops.push({ type: 'put', key: stateKey(room), value: encodeState(upTo, first) })
    rest.forEach((update, i) => ops.push({ type: 'put', key: updateKey(room, upTo + 1 + i), value: update }))
    ops.push({ type: 'put', key: metaKey(room), value: textEncoder.encode(JSON.stringify({ updatedAt: record.updatedAt ?? Date.now() })) })
    for (const v of record.versions) {
      ops.push({ type: 'put', key: versionStateKey(room, v.id), value: v.state })
      ops.push({ type: 'put', key: versionMetaKey(room, v.id), value: encodeVersionMeta(v) })
    }
    const log = record.log ?? logOfRecord(record, upTo, this.clock.stamp())
    if (log.base) ops.push({ type: 'put', key: logBaseKey(room), value: encodeLogBase(log.base) })
    // The log's updates are u: keys too (those at or before upTo only the log reads); one mark per run of equal times.
    let mark: { seq: number; at: number; runs: Run[] } | undefined
    const flush = (): void => { if (mark) ops.push({ type: 'put', key: markKey(room, mark.seq), value: encodeMark(mark.at, mark.runs) }) }
    for (const e of log.entries) {
      ops.push({ type: 'put', key: updateKey(room, e.seq), value: e.update })
      if (!mark || mark.at !== e.at || mark.seq !== e.seq - 1) {
        flush()
        mark = { seq: e.seq, at: e.at, runs: [] }
      }
      mark.seq = e.seq
      addRun(mark.runs, 1, e.user)
    }
    flush()
    await this.db.batch(ops, { sync: this.sync })
    this.reclaimer.wrote(room, record.updates.reduce((n, u) => n + u.length, 0))
    this.nextSeq.set(room, record.lastSeq + 1)
    // The next append writes updatedAt again (the record's own may be old).
    this.metaWrittenAt.delete(room)
  }

  // ---- end of history and backup ------------------------------------------------------

  // ---- history log -----------------------------------------------------------------------

  async readLog(room: string, range: LogRange = {}): Promise<HistoryLog> {
    assertOpen(this.closed)
    // One view of base, updates, marks and state: a fold or compaction meanwhile would
    // otherwise look like a gap in the log (and make an exact instant look inexact).
    // Read before the log: a delete meanwhile then refuses a fold of what was read.
    const generation = this.generations.get(room) ?? 0
    const snapshot = this.db.snapshot()
    try {
      const log = await this.readLogFrom(room, range, snapshot)
      return generation > 0 ? { ...log, generation } : log
    } finally {
      await snapshot.close()
    }
  }

  /** The log as `snapshot` holds it (no generation: see readLog). */
  private async readLogFrom(room: string, range: LogRange, snapshot: LevelSnapshot): Promise<HistoryLog> {
    const at = { snapshot }
    const stored = await this.db.get(logBaseKey(room), at)
    const base = stored === undefined ? undefined : decodeLogBase(stored)
    const after = Math.max(range.afterSeq ?? 0, base?.upTo ?? 0)
    const entries: LogEntry[] = []
    /** The first update the log cannot place in time (see HistoryLog.unmarked). */
    let unmarked: number | undefined
    let expected = after + 1
    let untilReached = false
    // Two ordered ranges read side by side: the updates, and the marks that cover them.
    const marks = this.db.iterator({ gt: markKey(room, after), lt: prefixEnd(markPrefix(room)), ...at })
    try {
      let mark: Mark | undefined
      for await (const [key, update] of this.db.iterator({ gt: updateKey(room, after), lt: prefixEnd(updatePrefix(room)), ...at })) {
        const seq = seqOfUpdateKey(key)
        // A gap: updates the log kept were deleted by something else (an older coedit's compaction).
        if (seq !== expected) {
          unmarked = expected
          break
        }
        while (!mark || mark.seq < seq) {
          const next = await marks.next()
          if (next === undefined) break
          mark = decodeMark(seqOfUpdateKey(next[0]), next[1])
        }
        // An update no mark covers was not stored by this code's append (an older coedit's).
        if (!mark || mark.seq < seq || seq <= mark.seq - mark.total) {
          unmarked = seq
          break
        }
        // Stamps never decrease along the log: the first one past `untilAt` ends it.
        if (range.untilAt !== undefined && mark.at > range.untilAt) {
          untilReached = true
          break
        }
        entries.push({ seq, at: mark.at, user: userAt(mark, seq), update })
        expected = seq + 1
        if (range.limit !== undefined && entries.length >= range.limit) {
          untilReached = true
          break
        }
      }
      // The log ran out: unless the compacted state holds updates past it, which an older
      // coedit stored and compacted away without the log seeing them.
      if (unmarked === undefined && !untilReached) {
        const state = await this.db.get(stateKey(room), at)
        if (state !== undefined && decodeState(state).upTo >= expected) unmarked = expected
      }
    } finally {
      await marks.close()
    }
    // A backup's view has no generation: it is a moment, not a writer (readLog adds it).
    return { base, entries, ...(unmarked !== undefined ? { unmarked } : {}) }
  }

  async foldLog(room: string, base: LogBase, fence?: WriteFence): Promise<void> {
    assertOpen(this.closed)
    this.fence(room, fence)
    await this.serialized(room, () => this.foldLogNow(room, base, fence))
  }

  private async foldLogNow(room: string, base: LogBase, fence: WriteFence | undefined): Promise<void> {
    this.fence(room, fence)
    const chained = this.db.batch()
    chained.put(logBaseKey(room), encodeLogBase(base))
    for await (const key of this.db.keys({ gt: markPrefix(room), lte: markKey(room, base.upTo) })) chained.del(key)
    // Updates the compacted state does not hold yet stay: load still needs them.
    const compacted = await this.db.get(stateKey(room))
    const through = Math.min(base.upTo, compacted === undefined ? 0 : decodeState(compacted).upTo)
    for await (const key of this.db.keys({ gt: updatePrefix(room), lte: updateKey(room, through) })) chained.del(key)
    await chained.write({ sync: this.sync })
    this.reclaimer.wrote(room, base.state.length)
  }

  // ---- end of history log ---------------------------------------------------------------

  // ---- health ----------------------------------------------------------------------------

  /** A tiny write and read back of a key outside every room's range (not fsynced: it proves writability, not durability). */
  async ping(): Promise<void> {
    assertOpen(this.closed || this.db.status !== 'open')
    const value = textEncoder.encode(String(Date.now()))
    await this.db.put(HEALTH_KEY, value)
    const back = await this.db.get(HEALTH_KEY)
    if (!back || Buffer.compare(back, value) !== 0) throw new CoeditError('STORE_PING_FAILED', 'health probe read back something else')
  }

  // ---- end of health ------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commits.drained()
    // The rooms' final states and versions are written by now: their ranges can shrink.
    await this.reclaimer.all()
    await this.db.close()
  }
}

/**
 * The history log of a record that carries none (a backup from before issue 18): it starts
 * at `at` with the record's first update as its base and the rest as entries.
 */
export function logOfRecord(record: RoomRecord, upTo: number, at: number): HistoryLog {
  const [first, ...rest] = record.updates
  return {
    base: { upTo, at, state: first ?? EMPTY_STATE },
    entries: rest.map((update, i) => ({ seq: upTo + 1 + i, at, user: undefined, update })),
  }
}
