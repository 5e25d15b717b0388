/**
 * The backup file: one stream holding every room of a store snapshot.
 *
 *   header   "COEDITBK", format version (byte 2), varuint createdAt (ms), varuint record count
 *   record*  byte 0x52 'R', varuint length, then: varstring name, varuint updatedAt (0 =
 *            unknown), varuint lastSeq, varbytes state (the room's merged update), varuint
 *            version count, each: varuint id, varuint at, varuint seq, varbytes state,
 *            then (format 2) the history section (server/operator/backup-history.ts)
 *         or byte 0x55 'U' (format 2), varuint length, then: varstring name, varstring
 *            reason: a room the backup could not read (it stays in the store as it was; see below)
 *   tomb*    (format 3) byte 0x54 'T', varuint length, then: varstring name, varbytes
 *            tombstone (server/persistence/tombstone.ts), after every room record; not counted as records
 *   trailer  byte 0x45 'E', varuint record count, 32 bytes SHA-256 of every byte before it
 *
 * A reader checks every frame and the trailer, so a truncated, corrupted or foreign file
 * is an error (code BAD_BACKUP) before anything is restored from it. Version 1 files (no
 * 'U' records) and version 2 files (no 'T' records) are read as well. A store without
 * tombstones is written as version 2, which coedit before tombstones reads too.
 *
 * Tombstones: a room deleted with `{ tombstone: true }` is not a room of the snapshot, but
 * its tombstone is what keeps the old content out after a restore (an offline copy sent
 * again), so it is carried: a 'T' record per tombstoned name, whether or not the name
 * holds content again (then its 'R' record comes first, and restoring it clears the
 * tombstone the 'T' record then sets).
 *
 * One room that cannot be read (a stored update that does not decode, a state whose
 * integration throws) must not cost the backup of every other room: the writer checks
 * each room as the reader will, and writes a 'U' record naming it instead. A state may
 * hold structs that wait for content the server never got (a client's clock gap): those
 * are carried as they are (Y.encodeStateAsUpdate includes them), and restored as pending.
 */
import { createHash, type Hash } from 'node:crypto'
import * as Y from 'yjs'
import { mergeUpdates } from '../room/yjs-log.js'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { CoeditError } from '../errors.js'
import type { RoomRecord, StoreSnapshot } from '../persistence/store.js'
import { createContainment, type Containment } from '../base/containment.js'
import { createLogger } from '../log.js'
import { checkHistoryLog, readHistorySection, writeHistorySection } from './backup-history.js'

const MAGIC = new TextEncoder().encode('COEDITBK')
const FORMAT_VERSION = 3
/** What a backup without tombstones is written as: readable by coedit before format 3. */
const FORMAT_WITHOUT_TOMBSTONES = 2
/** Format 1 files (before the history log and unreadable-room records) are still read. */
const OLDEST_READABLE = 1
const TAG_ROOM = 0x52
const TAG_UNREADABLE = 0x55
const TAG_TOMBSTONE = 0x54
const TAG_END = 0x45
/** One record may not claim more than this (a corrupt length must not allocate gigabytes). */
const MAX_RECORD = 1024 ** 3

export interface BackupHeader {
  createdAt: number
  /** Records: rooms, and rooms the backup could not read. */
  rooms: number
}

/** A room that was not backed up because it could not be read. */
export interface UnreadableRoom {
  name: string
  reason: string
}

export interface EncodeOptions {
  /** Told after each room written. */
  onRoom?: (room: string) => void
  /** Told about each room that could not be read (and was written as a 'U' record). */
  onUnreadable?: (room: UnreadableRoom) => void
  /** Where a room that could not be read is reported (a server's; default: not logged). */
  containment?: Containment
}

/** A tombstone as a backup holds it (see the module header). */
export interface BackupTombstone {
  name: string
  tombstone: Uint8Array
}

/** A room as a backup holds it: `updates` is one merged state. */
export type BackupRoom = RoomRecord

const bad = (why: string): CoeditError => new CoeditError('BAD_BACKUP', `not a valid coedit backup: ${why}`)

/** One room's record body, checked as a reader will check it. Throws if the room cannot be read. */
async function roomBody(snapshot: StoreSnapshot, name: string, containment: Containment): Promise<Uint8Array> {
  containment.check('backup', name)
  const record = await snapshot.read(name)
  const state = mergeUpdates(record.updates)
  checkUpdate(state, `room "${name}"`)
  for (const v of record.versions) checkUpdate(v.state, `version ${v.id} of room "${name}"`)
  const payload = encoding.createEncoder()
  encoding.writeVarString(payload, name)
  encoding.writeVarUint(payload, record.updatedAt ?? 0)
  encoding.writeVarUint(payload, record.lastSeq)
  encoding.writeVarUint8Array(payload, state)
  encoding.writeVarUint(payload, record.versions.length)
  for (const v of record.versions) {
    encoding.writeVarUint(payload, v.id)
    encoding.writeVarUint(payload, v.at)
    encoding.writeVarUint(payload, v.seq)
    encoding.writeVarUint8Array(payload, v.state)
  }
  writeHistorySection(payload, record)
  return encoding.toUint8Array(payload)
}

/** The backup of `snapshot`, chunk by chunk. */
export async function* encodeBackup(snapshot: StoreSnapshot, createdAt: number, options: EncodeOptions = {}): AsyncGenerator<Uint8Array> {
  const containment = options.containment ?? createContainment({ log: createLogger('silent') })
  const hash = createHash('sha256')
  const emit = (bytes: Uint8Array): Uint8Array => {
    hash.update(bytes)
    return bytes
  }
  const header = encoding.createEncoder()
  encoding.writeUint8Array(header, MAGIC)
  const tombstones = [...(snapshot.tombstones ?? [])].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  encoding.writeUint8(header, tombstones.length > 0 ? FORMAT_VERSION : FORMAT_WITHOUT_TOMBSTONES)
  encoding.writeVarUint(header, createdAt)
  encoding.writeVarUint(header, snapshot.rooms.length)
  yield emit(encoding.toUint8Array(header))
  for (const name of snapshot.rooms) {
    let tag = TAG_ROOM
    let body: Uint8Array
    try {
      body = await roomBody(snapshot, name, containment)
    } catch (err) {
      const reason = err instanceof CoeditError ? err.message : `${(err as Error).name ?? 'Error'}: ${(err as Error).message ?? String(err)}`
      containment.report('backup', err, { room: name })
      const payload = encoding.createEncoder()
      encoding.writeVarString(payload, name)
      encoding.writeVarString(payload, reason)
      tag = TAG_UNREADABLE
      body = encoding.toUint8Array(payload)
      options.onUnreadable?.({ name, reason })
    }
    const frame = encoding.createEncoder()
    encoding.writeUint8(frame, tag)
    encoding.writeVarUint(frame, body.length)
    yield emit(encoding.toUint8Array(frame))
    yield emit(body)
    options.onRoom?.(name)
  }
  for (const [name, tombstone] of tombstones) {
    const body = encoding.createEncoder()
    encoding.writeVarString(body, name)
    encoding.writeVarUint8Array(body, tombstone)
    const bytes = encoding.toUint8Array(body)
    const frame = encoding.createEncoder()
    encoding.writeUint8(frame, TAG_TOMBSTONE)
    encoding.writeVarUint(frame, bytes.length)
    yield emit(encoding.toUint8Array(frame))
    yield emit(bytes)
  }
  const trailer = encoding.createEncoder()
  encoding.writeUint8(trailer, TAG_END)
  encoding.writeVarUint(trailer, snapshot.rooms.length)
  const head = encoding.toUint8Array(trailer)
  hash.update(head)
  yield head
  yield new Uint8Array(hash.digest())
}

/** Reads exact byte counts from a chunk stream, hashing what it hands out. */
class ChunkReader {
  private buffer = new Uint8Array(0)
  private readonly iterator: AsyncIterator<Uint8Array>
  private done = false
  readonly hash: Hash = createHash('sha256')
  hashing = true

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.iterator = chunks[Symbol.asyncIterator]()
  }

  private async fill(n: number): Promise<boolean> {
    const parts: Uint8Array[] = [this.buffer]
    let have = this.buffer.length
    while (have < n && !this.done) {
      const next = await this.iterator.next()
      if (next.done) {
        this.done = true
        break
      }
      parts.push(next.value)
      have += next.value.length
    }
    if (parts.length > 1) this.buffer = new Uint8Array(Buffer.concat(parts))
    return this.buffer.length >= n
  }

  async read(n: number, what: string): Promise<Uint8Array> {
    if (!(await this.fill(n))) throw bad(`file ends inside ${what} (truncated?)`)
    const out = this.buffer.slice(0, n)
    this.buffer = this.buffer.subarray(n)
    if (this.hashing) this.hash.update(out)
    return out
  }

  async readVarUint(what: string): Promise<number> {
    let num = 0
    let mult = 1
    for (let i = 0; i < 8; i++) {
      const byte = (await this.read(1, what))[0]!
      num += (byte & 0x7f) * mult
      if (byte < 0x80) return num
      mult *= 128
    }
    throw bad(`malformed number in ${what}`)
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill(1))
  }
}

function decodeRoom(body: Uint8Array, format: number): BackupRoom {
  const d = decoding.createDecoder(body)
  const name = decoding.readVarString(d)
  const updatedAt = decoding.readVarUint(d)
  const lastSeq = decoding.readVarUint(d)
  const state = decoding.readVarUint8Array(d)
  const count = decoding.readVarUint(d)
  const versions = []
  for (let i = 0; i < count; i++) {
    const id = decoding.readVarUint(d)
    const at = decoding.readVarUint(d)
    const seq = decoding.readVarUint(d)
    const vstate = decoding.readVarUint8Array(d)
    versions.push({ id, at, seq, bytes: vstate.length, state: vstate })
  }
  const room: BackupRoom = { name, updatedAt: updatedAt === 0 ? undefined : updatedAt, lastSeq, updates: [state], versions }
  if (format >= 2) readHistorySection(d, room)
  if (decoding.hasContent(d)) throw new Error('extra bytes after the record')
  return room
}

function decodeTombstoneRecord(body: Uint8Array): BackupTombstone {
  const d = decoding.createDecoder(body)
  const name = decoding.readVarString(d)
  const tombstone = decoding.readVarUint8Array(d)
  if (decoding.hasContent(d)) throw new Error('extra bytes after the record')
  // A state vector of at least one client, with nothing after it.
  const t = decoding.createDecoder(tombstone)
  const clients = decoding.readVarUint(t)
  if (clients === 0) throw new Error('a tombstone of no client')
  for (let i = 0; i < clients; i++) {
    decoding.readVarUint(t)
    decoding.readVarUint(t)
  }
  if (decoding.hasContent(t)) throw new Error('extra bytes after the tombstone')
  return { name, tombstone }
}

/**
 * A Yjs update must apply cleanly (decodeUpdate alone accepts some truncated input). Structs
 * left pending (beyond a client's clock gap) are not an error: a room holds them as the
 * server stored them, and they are restored as they were.
 */
function checkUpdate(update: Uint8Array, what: string): void {
  const doc = new Y.Doc()
  try {
    Y.applyUpdate(doc, update)
  } catch (err) {
    throw bad(`${what} is not a valid Yjs state (${(err as Error).message})`)
  } finally {
    doc.destroy()
  }
}

/**
 * Reads a backup: first the header, then each room, checking every frame, every Yjs
 * state, and at the end the checksum. Throws BAD_BACKUP. Consumers that must change
 * nothing for a bad file read it through once (`verifyBackup`) before acting on it.
 */
export async function* decodeBackup(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<{ header: BackupHeader } | { room: BackupRoom } | { unreadable: UnreadableRoom } | { tombstone: BackupTombstone }> {
  const r = new ChunkReader(chunks)
  let magic: Uint8Array
  try {
    magic = await r.read(MAGIC.length, 'the header')
  } catch (err) {
    if (err instanceof CoeditError) throw bad('file too short')
    throw err
  }
  if (!Buffer.from(magic).equals(Buffer.from(MAGIC))) throw bad('wrong file type (no COEDITBK header)')
  const version = (await r.read(1, 'the header'))[0]
  if (version === undefined || version < OLDEST_READABLE || version > FORMAT_VERSION) throw bad(`format version ${version} is not supported (this coedit reads versions ${OLDEST_READABLE} to ${FORMAT_VERSION})`)
  const createdAt = await r.readVarUint('the header')
  const rooms = await r.readVarUint('the header')
  yield { header: { createdAt, rooms } }
  let seen = 0
  const tombstoned = new Set<string>()
  for (;;) {
    const tag = (await r.read(1, 'a record'))[0]
    if (tag === TAG_END) break
    const known = tag === TAG_ROOM || (tag === TAG_UNREADABLE && version >= 2) || (tag === TAG_TOMBSTONE && version >= 3)
    if (!known) throw bad(`unknown record type ${tag} after ${seen} rooms (corrupt?)`)
    // Tombstones come after every room: a room record after one would clear it at restore.
    if (tag !== TAG_TOMBSTONE && tombstoned.size > 0) throw bad(`a room record after the tombstones (corrupt?)`)
    const length = await r.readVarUint('a record')
    if (length > MAX_RECORD) throw bad(`record ${seen + 1} claims ${length} bytes (corrupt?)`)
    const body = await r.read(length, tag === TAG_TOMBSTONE ? `tombstone ${tombstoned.size + 1}` : `room record ${seen + 1}`)
    if (tag === TAG_TOMBSTONE) {
      let tombstone: BackupTombstone
      try {
        tombstone = decodeTombstoneRecord(body)
      } catch (err) {
        throw bad(`tombstone ${tombstoned.size + 1} is malformed (${(err as Error).message})`)
      }
      if (tombstoned.has(tombstone.name)) throw bad(`two tombstones for room "${tombstone.name}"`)
      tombstoned.add(tombstone.name)
      yield { tombstone }
      continue
    }
    if (tag === TAG_UNREADABLE) {
      let unreadable: UnreadableRoom
      try {
        const d = decoding.createDecoder(body)
        unreadable = { name: decoding.readVarString(d), reason: decoding.readVarString(d) }
        if (decoding.hasContent(d)) throw new Error('extra bytes after the record')
      } catch (err) {
        throw bad(`record ${seen + 1} is malformed (${(err as Error).message})`)
      }
      seen++
      yield { unreadable }
      continue
    }
    let room: BackupRoom
    try {
      room = decodeRoom(body, version)
    } catch (err) {
      throw bad(`room record ${seen + 1} is malformed (${(err as Error).message})`)
    }
    checkUpdate(room.updates[0]!, `room "${room.name}"`)
    for (const v of room.versions) checkUpdate(v.state, `version ${v.id} of room "${room.name}"`)
    if (room.log) {
      try {
        checkHistoryLog(room.log, room.updates[0]!)
      } catch (err) {
        throw bad(`the history log of room "${room.name}" is broken (${(err as Error).message})`)
      }
    }
    seen++
    yield { room }
  }
  const count = await r.readVarUint('the trailer')
  const expected = r.hash.digest()
  r.hashing = false
  const stored = await r.read(32, 'the trailer')
  if (!expected.equals(Buffer.from(stored))) throw bad('checksum mismatch (the file is corrupt)')
  if (count !== seen || count !== rooms) throw bad(`the file holds ${seen} rooms but says ${count}`)
  if (!(await r.atEnd())) throw bad('extra bytes after the end')
}

/** Reads the whole backup, checking it; returns its header. Throws BAD_BACKUP. */
export async function verifyBackup(chunks: AsyncIterable<Uint8Array>, onRoom?: (room: BackupRoom) => void, onUnreadable?: (room: UnreadableRoom) => void): Promise<BackupHeader> {
  let header: BackupHeader | undefined
  for await (const item of decodeBackup(chunks)) {
    if ('header' in item) header = item.header
    else if ('room' in item) onRoom?.(item.room)
    else if ('unreadable' in item) onUnreadable?.(item.unreadable)
  }
  return header!
}
