/**
 * The history section of a backup record (backup format 2, issue 18), after the versions:
 *
 *   varuint pinned count, each: varuint version id        versions kept through a revert
 *   varuint log flag (0: none; 1: a history log follows)
 *   log:  varuint base flag, base: varuint upTo, varuint at, varbytes state
 *         varuint entry count, each: varuint seq, varuint at, varstring user ('' = unknown), varbytes update
 *
 * A reader checks the log as a whole (seqs contiguous after the base and within the room,
 * times never decreasing, and base + entries apply cleanly), so a restored room answers
 * "the room at T" as the backed-up one did.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { HistoryLog, LogEntry, RoomRecord } from '../persistence/store.js'

export function writeHistorySection(e: encoding.Encoder, record: RoomRecord): void {
  const pinned = record.versions.filter((v) => v.pinned)
  encoding.writeVarUint(e, pinned.length)
  for (const v of pinned) encoding.writeVarUint(e, v.id)
  const log = record.log
  encoding.writeVarUint(e, log ? 1 : 0)
  if (!log) return
  encoding.writeVarUint(e, log.base ? 1 : 0)
  if (log.base) {
    encoding.writeVarUint(e, log.base.upTo)
    encoding.writeVarUint(e, log.base.at)
    encoding.writeVarUint8Array(e, log.base.state)
  }
  encoding.writeVarUint(e, log.entries.length)
  for (const entry of log.entries) {
    encoding.writeVarUint(e, entry.seq)
    encoding.writeVarUint(e, entry.at)
    encoding.writeVarString(e, entry.user ?? '')
    encoding.writeVarUint8Array(e, entry.update)
  }
}

/** Reads the section into `record` (pinned flags on its versions, its log); throws on a malformed one. */
export function readHistorySection(d: decoding.Decoder, record: RoomRecord): void {
  const pinnedCount = decoding.readVarUint(d)
  if (pinnedCount > record.versions.length) throw new Error('more pinned versions than versions')
  const pinned = new Set<number>()
  for (let i = 0; i < pinnedCount; i++) pinned.add(decoding.readVarUint(d))
  record.versions = record.versions.map((v) => (pinned.has(v.id) ? { ...v, pinned: true } : v))
  if (decoding.readVarUint(d) === 0) return
  const log: HistoryLog = { base: undefined, entries: [] }
  if (decoding.readVarUint(d) === 1) {
    const upTo = decoding.readVarUint(d)
    const at = decoding.readVarUint(d)
    log.base = { upTo, at, state: decoding.readVarUint8Array(d) }
  }
  const count = decoding.readVarUint(d)
  let seq = log.base?.upTo ?? 0
  let at = log.base?.at ?? 0
  for (let i = 0; i < count; i++) {
    const entry: LogEntry = { seq: decoding.readVarUint(d), at: decoding.readVarUint(d), user: undefined, update: new Uint8Array(0) }
    const user = decoding.readVarString(d)
    entry.user = user === '' ? undefined : user
    entry.update = decoding.readVarUint8Array(d)
    if (entry.seq !== seq + 1) throw new Error(`history log entry ${entry.seq} does not follow ${seq}`)
    if (entry.at < at) throw new Error(`history log entry ${entry.seq} is older than the one before it`)
    seq = entry.seq
    at = entry.at
    log.entries.push(entry)
  }
  if (seq > record.lastSeq) throw new Error(`history log reaches seq ${seq}, past the room's ${record.lastSeq}`)
  record.log = log
}

/**
 * Throws unless the log's base and entries apply cleanly, in order, and lack nothing the
 * room's `state` has. Structs left pending (beyond a client's clock gap) are not an error
 * when the room's state holds them pending too: the room stored them so, and the backup
 * carries them the same way (see backup-format.ts). A log whose entries wait for content
 * the room has complete is broken (entries missing or out of order).
 */
export function checkHistoryLog(log: HistoryLog, state: Uint8Array): void {
  let doc = new Y.Doc()
  try {
    Y.transact(doc, () => {
      if (log.base) Y.applyUpdate(doc, log.base.state)
      for (const e of log.entries) Y.applyUpdate(doc, e.update)
    })
    if (doc.store.pendingStructs !== null || doc.store.pendingDs !== null) {
      // Applied one by one, Yjs's retry of pending structs can leave a chain stuck that the
      // same updates merged do integrate (found by the fuzz suite's backup of its store): judge
      // the log by its merged form before calling it broken.
      doc.destroy()
      doc = new Y.Doc()
      Y.applyUpdate(doc, Y.mergeUpdates([...(log.base ? [log.base.state] : []), ...log.entries.map((e) => e.update)]))
    }
    if (doc.store.pendingStructs !== null || doc.store.pendingDs !== null) {
      const room = new Y.Doc()
      try {
        Y.applyUpdate(room, state)
        const logMissing = doc.store.pendingStructs?.missing ?? new Map<number, number>()
        const roomMissing = room.store.pendingStructs?.missing ?? new Map<number, number>()
        for (const [client, clock] of logMissing) {
          if (!roomMissing.has(client) || roomMissing.get(client)! > clock) throw new Error('its updates depend on content it lacks')
        }
        if (doc.store.pendingDs !== null && room.store.pendingDs === null) throw new Error('its deletions depend on content it lacks')
      } finally {
        room.destroy()
      }
    }
  } finally {
    doc.destroy()
  }
}
