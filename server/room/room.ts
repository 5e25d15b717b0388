/**
 * A room: one Yjs document, its presence (presence.ts), and the connections editing it.
 *
 * Invariant: the in-memory document holds exactly what is durably stored. An incoming
 * update is validated, appended to the store, and only once the store confirms is it
 * applied to the document, which is what relays it (and what later joiners are served
 * from). So nothing anyone receives from the server can be lost by a crash.
 *
 * The room knows connections only through `Peer` (send, close): no `ws` here.
 */
import * as Y from 'yjs'
import type { Logger } from 'pino'
import { applyUpdates, isStackOverflow, keepDeepGarbage } from './yjs-log.js'
import {
  CLOSE_BAD_MESSAGE, CLOSE_INTERNAL_ERROR, CLOSE_ROOM_DELETED, CLOSE_TRY_AGAIN_LATER, type CloseCode,
} from './close-codes.js'
import {
  ProtocolError, decodeClientMessage, encodeCoeditPersisted, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate,
} from './protocol.js'
import { isRoomDeleted, type Store, type StoredSince } from '../persistence/store.js'
import { checkTombstone } from './tombstone.js'
import { decodeTombstone, type Tombstone } from '../persistence/tombstone.js'
import { CLOSE_DOCUMENT_TOO_LARGE } from './close-codes.js'
import {
  InflightUpdates, checkRoomNesting, decodeUpdateChecked, partToStore, validateUpdate, type DecodedUpdate, type ItemDepths,
} from './update-checks.js'
import { encodeAuthDenied } from './protocol.js'
import { Presence } from './presence.js'
import { forRoom, type Containment } from '../base/containment.js'
import type { EventSink } from '../base/events.js'
import { CoeditError } from '../errors.js'
import { PathTrace, type PathMarks } from '../base/path-trace.js'
import type { Peer, User } from './peer.js'

/** Transaction origins, so an update is relayed once and never persisted twice. */
export type UpdateOrigin =
  | { readonly source: 'connection'; readonly peer: Peer }
  | { readonly source: 'load' }
  | { readonly source: 'admin'; readonly user?: User }
  | { readonly source: 'remote' }
  /** A change made on the server (`server.documents`, the document API), on behalf of `user` when known. */
  | { readonly source: 'api'; readonly user?: { readonly id: string; readonly name?: string } }

const LOAD_ORIGIN: UpdateOrigin = { source: 'load' }
/** Compaction waits for the log to reach 1/this of the state's size (see compactionDue). */
const COMPACTION_LOG_SHARE = 4
/** Rooms with at least this many connections get a tick's updates merged into one message (see relay). */
const MERGE_MIN_PEERS = 16
const ADMIN_ORIGIN: UpdateOrigin = { source: 'admin' }
const REMOTE_ORIGIN: UpdateOrigin = { source: 'remote' }

/**
 * What a room tells (server/base/events.ts): metrics, webhooks, history, the cluster and the
 * user's hooks listen. Emitted synchronously, never awaited; a listener cannot hold up or
 * break the room. Updates other processes stored arrive through `applyRemote`/`catchUp`
 * and their awareness through `applyRemoteAwareness`, not as events.
 */
export interface RoomEvents {
  /**
   * An update is durably stored as `seq` and applied to the document (and queued for
   * relay). `ms`: from its arrival to now. Origin `remote`: another process stored it
   * (cluster mode; `seq` is then the room's sequence number after it, and `update` what
   * was new here).
   */
  'update.applied': { room: Room; update: Uint8Array; origin: UpdateOrigin; seq: number; ms: number }
  /** An append to the store settled after `ms` (ok = durable), before it is applied. */
  'store.settled': { room: Room; ms: number; ok: boolean }
  /**
   * The room's log was folded into `state` (the room through `upTo`). `updates`: how many
   * it folded; 0 when an unloading room (`final`) hands over its last folded state again
   * without a new compaction.
   */
  'room.compacted': { room: Room; state: Uint8Array; upTo: number; final: boolean; updates: number; ms: number }
  /** Storing a compaction failed (the log is kept). Encoding failures are contained as `compaction`. */
  'room.compactionFailed': { room: Room; error: unknown }
  /** Applied sequence numbers skipped ahead (cluster mode): what is missing must be read from the store. */
  'room.gap': { room: Room }
  /** Awareness changed by this process's own connections (or their departure), encoded. */
  'awareness.local': { room: Room; update: Uint8Array }
  /** A connection joined the room (it has been greeted). */
  'peer.joined': { room: Room; peer: Peer }
  /** A connection left the room; `code` is the WebSocket close code (see Room.removePeer). */
  'peer.left': { room: Room; peer: Peer; code: number }
}

/**
 * The one registry that owns a room: told when the room empties (to schedule its unload)
 * and when it fails (to drop it). Not a notification surface: a direct, uncontained call
 * to the room's owner, which must act on it for the room to be unloaded at all.
 */
export interface RoomOwner {
  empty(room: Room): void
  failed(room: Room): void
}

export interface RoomOptions {
  /** Send each stored update back to its sender too (the echo-based "saved" signal of y-websocket 4). */
  echo: boolean
  /** Minimum ms between two awareness relays of a room; changes in between are merged. */
  awarenessInterval: number
  /** Fold the update log into one stored state after this many updates. */
  compactEvery: number
  /** Refuse updates that would take the stored size (last compacted state + updates since) past this; 0 = no limit. */
  maxDocumentSize?: number
  /** How far past the room's state of a client an update may reach (see checkUpdateClocks); 0 = no check. */
  maxClockAdvance?: number
  /** Largest awareness state, bytes of JSON (see PresenceLimits); absent = no limit. */
  maxAwarenessSize?: number
  /** Deepest nesting of an awareness state. */
  maxAwarenessDepth?: number
  /** Awareness client IDs one connection may introduce. */
  maxAwarenessClients?: number
  /** Bytes of all awareness states of the room. */
  maxAwarenessRoomSize?: number
  /** Refuse updates that would nest shared types deeper than this (see checkNestingDepth); 0 = no check. */
  maxNestingDepth?: number
  log: Logger
  /** Where exceptions on background paths (relay, integration, compaction, presence) are reported. */
  containment: Containment
  /** Where the room's events go (server/base/events.ts). */
  events: EventSink<RoomEvents>
  /**
   * Other processes append to this room's log too (cluster mode): stored sequence numbers
   * can reach this process out of order, and a gap is told as `room.gap`.
   */
  sharedStore?: boolean
  /** --trace-path: where client updates' stage times go (server/base/path-trace.ts); absent = off. */
  pathTrace?: PathTrace
}

interface PeerState {
  readonly origin: UpdateOrigin
  /** Document messages (sync step 2 + update) received, for persisted acks. */
  received: number
  /** Highest count confirmed durable but not yet told to the client. */
  ackDue: number
  /** A read-only peer was told once that its writes are refused. */
  deniedSent?: boolean
}

type WriteResult = { ok: true; seq: number } | { ok: false; error: unknown }

/** An applied update waiting for the end of the tick to be relayed; `marks` with --trace-path. */
interface Outgoing {
  update: Uint8Array
  sender: Peer | undefined
  marks?: PathMarks
}

export class Room {
  readonly name: string
  /** The document, integrated or not yet (see `doc`). */
  private readonly ydoc: Y.Doc
  /**
   * A lone stored state not yet integrated into `ydoc`: a cold room answers its first
   * joiners from the stored bytes and integrates right after (setImmediate), so a big
   * document's first client waits for one read and one send, not for the integration too.
   */
  private unintegrated: Uint8Array | undefined
  /** Joined while the document was not integrated: they get our sync step 1 after. */
  private readonly awaitingStep1 = new Set<Peer>()
  private readonly presence: Presence
  private readonly store: Store
  private readonly options: RoomOptions
  private readonly log: Logger
  private readonly peers = new Map<Peer, PeerState>()
  private readonly ackDirty = new Set<Peer>()
  /** Updates applied in this tick, not yet relayed (see relay). */
  private outbox: Outgoing[] = []
  private tail: Promise<void> = Promise.resolve()
  private pendingWrites = 0
  /** Every stored update up to this sequence number is in the document. */
  private appliedThrough: number
  /** Applied updates beyond a gap (cluster mode: another process's update not seen yet). */
  private readonly appliedAhead = new Set<number>()
  private sinceCompaction: number
  private compacting: Promise<void> | undefined
  /** Bytes stored (or being stored) for this room: the document size limit counts these. */
  private storedBytes = 0
  /** Bytes of the stored state (the last compaction's); the rest of storedBytes is the log. */
  private stateBytes = 0
  /** Bytes of updates being stored, not yet applied (so in no compaction's state). */
  private inflightBytes = 0
  /** Client updates being stored, not yet applied: the update checks count them as present. */
  private readonly inflight = new InflightUpdates()
  private destroyed = false
  /** A stored update failed to apply at load: compacting would delete it for good, so we don't. */
  private loadIncomplete = false
  /** Encoding the document for a compaction threw (contained): the log is kept as it is. */
  private compactionFailed = false
  /**
   * The whole document as one update, while nothing has been applied since it was made (at
   * load, compaction or a joiner's sync): a cold room's joiners get it without a re-encode
   * of the document each. Any transaction on the document drops it.
   */
  private fullState: Uint8Array | undefined
  private failed = false
  private readonly owner: RoomOwner
  private readonly events: EventSink<RoomEvents>
  /** The store's generation of the room this copy was loaded from: every write names it (see WriteFence). */
  readonly generation: number
  /** What a delete with a tombstone left: updates touching it are refused (see tombstone.ts). */
  private readonly tombstone: Tombstone | undefined
  /** Ended by a delete (see `deleted`), not by a failure. */
  private wasDeleted = false

  private constructor(name: string, store: Store, options: RoomOptions, owner: RoomOwner, stored: { lastSeq: number; pendingUpdates: number; generation?: number; tombstone?: Uint8Array }, doc: Y.Doc) {
    this.name = name
    this.store = store
    this.options = options
    this.owner = owner
    this.events = options.events
    this.log = options.log
    this.appliedThrough = stored.lastSeq
    this.sinceCompaction = stored.pendingUpdates
    this.generation = stored.generation ?? 0
    this.tombstone = stored.tombstone && decodeTombstone(stored.tombstone)
    this.ydoc = doc
    this.presence = new Presence(this.ydoc, {
      interval: options.awarenessInterval,
      peers: () => this.peers.keys(),
      containment: forRoom(options.containment, name),
      // Presence is this room's own part: its callback is internal wiring, the event is the room's.
      onLocalChange: (encode) => {
        // Encoded only for a listener (cluster mode): a single process has none.
        if (this.events.listens('awareness.local')) this.events.emit('awareness.local', { room: this, update: encode() })
      },
      limits: {
        maxStateBytes: options.maxAwarenessSize ?? Infinity,
        maxDepth: options.maxAwarenessDepth ?? Infinity,
        maxClientsPerConnection: options.maxAwarenessClients ?? Infinity,
        maxRoomBytes: options.maxAwarenessRoomSize ?? Infinity,
      },
      log: options.log,
    })
  }

  /** Loads a room from storage for `owner` (its registry). Rejects (and serves nothing) if storage cannot be read. */
  static async load(name: string, store: Store, options: RoomOptions, owner: RoomOwner): Promise<Room> {
    const stored = await store.load(name)
    const lone = stored.updates.length === 1 && stored.pendingUpdates === 0
    // A fault injected on room_load (tests) fails the load, as an unreadable store does:
    // nothing is served and the next join tries again.
    if (!lone) options.containment.check('room_load', name)
    const failures: unknown[] = []
    const doc = lone ? roomDoc() : loadLog(stored.updates, failures)
    const room = new Room(name, store, options, owner, stored, doc)
    for (const u of stored.updates) room.storedBytes += u.length
    // The stored state, if any, comes first; the log's updates follow it.
    if (stored.updates.length > stored.pendingUpdates) room.stateBytes = stored.updates[0]!.length
    if (lone) {
      // A compacted state (encoded from a document that held it) can be served as stored.
      room.unintegrated = room.fullState = stored.updates[0]!
      setImmediate(() => room.integrate())
    } else {
      for (const err of failures) room.skipped(err, 'room_load')
      // A lone logged update is the document as it stands: a fresh joiner gets it as it is.
      if (stored.updates.length === 1 && failures.length === 0) room.fullState = stored.updates[0]
    }
    // No doc 'update' listener: Yjs would re-encode every applied update for it, and for a
    // long run of one client's typing that re-encoding flattens the whole merged string
    // (O(run length) per keystroke). Each apply site relays the update it applied instead.
    room.ydoc.on('afterTransaction', () => { room.fullState = undefined })
    if (room.compactionDue) room.scheduleCompaction()
    return room
  }

  /**
   * The whole document as one update, without integrating a cold room's stored state
   * (that is what it serves). A copy for someone else: `Y.applyUpdate(new Y.Doc(), …)`.
   */
  encodeState(): Uint8Array {
    if (this.unintegrated) return this.unintegrated
    return this.fullState ??= Y.encodeStateAsUpdate(this.ydoc)
  }

  /** The document, integrating a stored state first if it is still pending. */
  get doc(): Y.Doc {
    if (this.unintegrated) this.integrate()
    return this.ydoc
  }

  private integrate(): void {
    const state = this.unintegrated
    if (!state || this.destroyed) return
    this.unintegrated = undefined
    try {
      // A fault injected here (tests) fails the room as a whole; what the state itself
      // throws is handled per update in applyStored.
      this.options.containment.check('room_integrate', this.name)
    } catch (err) {
      // Runs on a timer (or inside whatever first read `doc`): thrown on, it would end the process.
      this.options.containment.report('room_integrate', err, { room: this.name })
      this.fail()
      return
    }
    this.applyStored([state], 'room_integrate')
    const step1 = encodeSyncStep1(Y.encodeStateVector(this.ydoc))
    for (const peer of this.awaitingStep1) if (this.peers.has(peer)) peer.send(step1)
    this.awaitingStep1.clear()
  }

  /**
   * Integrates the lone stored state (from setImmediate, or for the first caller of `doc`).
   * Runs on stored client data outside any message handler, so nothing may escape: a state
   * that throws (a stack overflow on content nested too deep, stored before
   * --max-nesting-depth existed) is reported, and the room serves what of it applied, is
   * never compacted, and so keeps the stored state. Unlike a log (see loadLog) a lone state
   * cannot be left out without serving an empty room.
   */
  private applyStored(updates: Uint8Array[], path: 'room_integrate'): void {
    try {
      applyUpdates(this.ydoc, updates, LOAD_ORIGIN, (err) => this.skipped(err, path))
    } catch (err) {
      // Only the transaction's own cleanup could throw here (each update is caught above).
      this.skipped(err, path)
    }
    // A lone stored state is the document as it stands: a fresh joiner gets it as it is.
    if (!this.loadIncomplete) this.fullState = updates[0]
  }

  /** A stored update could not be applied: logged, counted, and the room never compacted (which would drop it). */
  private skipped(err: unknown, path: 'room_load' | 'room_integrate'): void {
    this.loadIncomplete = true
    this.log.error({ event: 'load_update_skipped', code: isStackOverflow(err) ? 'TOO_DEEP' : undefined, err: String(err) }, 'stored update could not be applied; the room will not be compacted')
    this.options.containment.report(path, err, { room: this.name })
  }

  /**
   * The room's document cannot be trusted (integrating what was stored threw): it must never
   * be compacted (that would replace the stored log by a broken state) nor serve anyone. Its
   * connections get 1013 (the stock provider retries) and the registry drops it, so the next
   * join loads it afresh from what is stored, which is untouched.
   */
  private fail(): void {
    this.end(CLOSE_TRY_AGAIN_LATER)
  }

  /**
   * The room was deleted (here, or by another process: a write of ours was refused for it).
   * Its connections leave with 4410, nothing more of it is stored (no compaction, no
   * version, no write in flight applied or published) and the registry forgets it.
   */
  deleted(): void {
    if (!this.failed) this.wasDeleted = true
    this.end(CLOSE_ROOM_DELETED)
  }

  /** Client `id` wrote in a deleted copy of the room: updates with its items are refused (see tombstone.ts). */
  isTombstoned(id: number): boolean {
    return this.tombstone?.has(id) ?? false
  }

  /** True once the room was deleted (see `deleted`): its owner tells it as unloaded for that reason. */
  get isDeleted(): boolean {
    return this.wasDeleted
  }

  /** Ends the room for good: its connections leave with `close`, the registry drops it uncompacted. */
  private end(close: CloseCode): void {
    if (this.failed) return
    this.failed = true
    this.loadIncomplete = true
    this.disconnect(close)
    this.owner.failed(this)
  }

  /** True once the room failed or was deleted: it serves and stores nothing more. */
  get isEnded(): boolean {
    return this.failed
  }

  /** Makes every connection leave the room with `close` (see Peer.leave); returns how many. */
  disconnect(close: CloseCode, detail?: string): number {
    const peers = [...this.peers.keys()]
    for (const peer of peers) this.dismiss(peer, close, detail)
    return peers.length
  }

  private dismiss(peer: Peer, close: CloseCode, detail?: string): void {
    if (peer.leave) peer.leave(close, detail)
    else peer.close(close, detail)
  }

  get size(): number {
    return this.peers.size
  }

  get isDestroyed(): boolean {
    return this.destroyed
  }

  /** Adds a connection and greets it. Returns false if the room was unloaded meanwhile. */
  addPeer(peer: Peer): boolean {
    if (this.destroyed || this.failed) return false
    this.peers.set(peer, {
      origin: { source: 'connection', peer },
      received: 0,
      ackDue: 0,
    })
    if (this.unintegrated) this.awaitingStep1.add(peer)
    else peer.send(encodeSyncStep1(Y.encodeStateVector(this.ydoc)))
    this.presence.greet(peer)
    this.events.emit('peer.joined', { room: this, peer })
    return true
  }

  /**
   * `peer` left: `code` is its WebSocket close code (a Hocuspocus document closed on its
   * own: 1000, or the code it was detached with), told in `peer.left`.
   */
  removePeer(peer: Peer, code: number): void {
    const state = this.peers.get(peer)
    if (!state) return
    this.peers.delete(peer)
    this.ackDirty.delete(peer)
    this.awaitingStep1.delete(peer)
    this.presence.remove(peer)
    this.events.emit('peer.left', { room: this, peer, code })
    if (this.peers.size === 0) this.owner.empty(this)
  }

  /** Handles one binary frame from `peer`. Malformed input closes only that peer. */
  receive(peer: Peer, data: Uint8Array): void {
    const state = this.peers.get(peer)
    // An ended room's connections are leaving: what they still send is dropped.
    if (!state || this.failed) return
    const marks = this.options.pathTrace?.start()
    try {
      const message = decodeClientMessage(data)
      switch (message.type) {
        case 'sync-step1':
          peer.send(encodeSyncStep2(this.encodeStateFor(message.stateVector)))
          break
        case 'sync-step2':
        case 'sync-update':
          if (peer.readOnly) this.refuseWrite(peer, state, message.update)
          else this.receiveUpdate(peer, state, message.update, marks)
          break
        case 'awareness':
          this.presence.receive(peer, message.update)
          break
        case 'query-awareness':
          this.presence.answerQuery(peer)
          break
      }
    } catch (err) {
      if (err instanceof ProtocolError && err.code === 'DELETED_CONTENT') {
        this.log.info({ event: 'write_refused', peer: peer.id, code: err.code, err: err.message }, 'update carries content of the deleted room, closing connection')
        this.dismiss(peer, CLOSE_ROOM_DELETED, `${err.code}: ${err.message}`)
      } else if (err instanceof ProtocolError) {
        this.log.warn({ event: 'bad_message', peer: peer.id, code: err.code, err: err.message }, 'malformed message, closing connection')
        peer.close(CLOSE_BAD_MESSAGE, `${err.code}: ${err.message}`)
      } else {
        this.log.error({ event: 'message_failed', peer: peer.id, err: String(err) }, 'message handling failed')
        peer.close(CLOSE_INTERNAL_ERROR)
      }
    }
  }

  private encodeStateFor(stateVector: Uint8Array): Uint8Array {
    let sv: Map<number, number>
    try {
      sv = Y.decodeStateVector(stateVector)
    } catch {
      throw new ProtocolError('BAD_STATE_VECTOR', 'sync step 1 carries a malformed state vector')
    }
    if (sv.size === 0) return this.fullState ??= Y.encodeStateAsUpdate(this.doc)
    return Y.encodeStateAsUpdate(this.doc, stateVector)
  }

  /**
   * A reader's document change: never applied, relayed or stored. The first non-empty one
   * gets an auth "permission denied" message (the stock provider logs it); later ones are
   * dropped silently. A reader's empty sync step 2 (the usual answer to our step 1) is no write.
   */
  private refuseWrite(peer: Peer, state: PeerState, update: Uint8Array): void {
    if (validateUpdate(update) || state.deniedSent) return
    state.deniedSent = true
    this.log.info({ event: 'write_refused', peer: peer.id, code: 'READ_ONLY' }, 'read-only connection tried to write')
    peer.send(encodeAuthDenied('read-only access: your changes are not saved or shared'))
  }

  private receiveUpdate(peer: Peer, state: PeerState, received: Uint8Array, marks?: PathMarks): void {
    const checked = this.checkUpdate(received)
    PathTrace.mark(marks, 'validate')
    if (checked === 'too-large') {
      this.log.warn({ event: 'document_too_large', peer: peer.id, bytes: this.storedBytes, update: received.length, limit: this.options.maxDocumentSize }, 'update refused: document size limit')
      peer.close(CLOSE_DOCUMENT_TOO_LARGE, `document size limit of ${this.options.maxDocumentSize} bytes reached`)
      return
    }
    const count = ++state.received
    if (checked.decoded.empty) {
      // Nothing to store, but acks must stay in order with the writes before it.
      this.tail = this.tail.then(() => this.ack(peer, count))
      return
    }
    this.enqueueWrite(checked.update, checked.decoded, checked.depths, state.origin, peer, count, marks)
  }

  /**
   * A client's update, checked: throws ProtocolError for bytes that are not an update,
   * implausible clocks or nesting too deep; 'too-large' past --max-document-size. Returns
   * the part the room lacks (empty if it has it all).
   */
  private checkUpdate(received: Uint8Array): { update: Uint8Array; decoded: DecodedUpdate; depths: ItemDepths | undefined } | 'too-large' {
    const whole = decodeUpdateChecked(received)
    // Checked on the whole update: the part the room lacks could leave out what touches the old content.
    if (this.tombstone) checkTombstone(whole, this.tombstone)
    const { update, decoded } = partToStore(received, whole, this.doc, this.inflight, this.options.maxClockAdvance ?? 0)
    let depths: ItemDepths | undefined
    if (decoded.empty) return { update, decoded, depths }
    depths = checkRoomNesting(decoded, this.doc, this.inflight, this.options.maxNestingDepth ?? 0)
    const limit = this.options.maxDocumentSize
    if (limit && this.storedBytes + update.length > limit) return 'too-large'
    return { update, decoded, depths }
  }

  /**
   * An update made on the server (`server.documents`, the document API): the checks of a
   * client's update, then stored, applied and relayed like one. Resolves once stored and
   * applied, to whether anything was new; rejects with a coded error if refused or not stored.
   */
  async applyApiUpdate(received: Uint8Array, origin: Extract<UpdateOrigin, { source: 'api' }>): Promise<boolean> {
    // Only at shutdown or after a failure: a room in use by the API is not unloaded (RoomRegistry.use).
    if (this.wasDeleted) throw new CoeditError('ROOM_DELETED', `room ${this.name} was deleted while this change was on its way; try again (on the room as it is now)`)
    if (this.destroyed || this.failed) throw new CoeditError('ROOM_UNAVAILABLE', `room ${this.name} is shutting down or failed; try again`)
    let checked
    try {
      checked = this.checkUpdate(received)
    } catch (err) {
      if (err instanceof ProtocolError) throw new CoeditError(err.code, err.message)
      throw err
    }
    if (checked === 'too-large') {
      this.log.warn({ event: 'document_too_large', source: 'api', bytes: this.storedBytes, update: received.length, limit: this.options.maxDocumentSize }, 'update refused: document size limit')
      throw new CoeditError('DOCUMENT_TOO_LARGE', `document size limit of ${this.options.maxDocumentSize} bytes reached`)
    }
    if (checked.decoded.empty) return false
    try {
      await this.enqueueWrite(checked.update, checked.decoded, checked.depths, origin, undefined, 0)
    } catch (err) {
      if (isRoomDeleted(err)) throw new CoeditError('ROOM_DELETED', `room ${this.name} was deleted while this change was on its way; it was not stored`, { cause: err })
      throw new CoeditError('STORE_FAILED', `the update was not stored: ${(err as Error).message}`, { cause: err })
    }
    return true
  }

  /**
   * Stores `update` and then applies it. Writes start at once (the store batches them);
   * applies happen strictly in arrival order.
   */
  private enqueueWrite(update: Uint8Array, decoded: DecodedUpdate, depths: ItemDepths | undefined, origin: UpdateOrigin, peer: Peer | undefined, count: number, marks?: PathMarks): Promise<void> {
    this.pendingWrites++
    this.storedBytes += update.length
    this.inflightBytes += update.length
    this.inflight.add(update, decoded, depths)
    const user = userOf(origin)?.id
    const started = performance.now()
    const meta = { generation: this.generation, ...(user === undefined ? {} : { user }), ...(marks ? { marks } : {}) }
    const written: Promise<WriteResult> = this.store.append(this.name, [update], meta).then(
      (seq) => ({ ok: true, seq }),
      (error: unknown) => ({ ok: false, error }),
    )
    PathTrace.mark(marks, 'append')
    if (this.events.listens('store.settled')) {
      void written.then((r) => this.events.emit('store.settled', { room: this, ms: performance.now() - started, ok: r.ok }))
    }
    const done = this.tail.then(() => written).then((result) => {
      this.pendingWrites--
      this.inflightBytes -= update.length
      this.inflight.delete(update)
      if (!result.ok) {
        this.storedBytes -= update.length
        if (isRoomDeleted(result.error)) {
          // Another process deleted the room: this copy is stale, and so is every client's.
          this.log.info({ event: 'room_deleted_elsewhere' }, 'write refused: the room was deleted, closing its connections')
          this.deleted()
        } else {
          this.log.error({ event: 'store_write_failed', err: String(result.error) }, 'update not stored')
          // The client still has its update and will send it again after reconnecting.
          peer?.close(CLOSE_TRY_AGAIN_LATER, 'storage unavailable')
        }
        if (!peer) throw result.error
        return
      }
      // Stored for a room that was deleted or failed since: its delete removes it (or the next
      // load reads it). Applied, relayed or published it would reach the new room's clients.
      if (this.failed) return
      this.sinceCompaction++
      try {
        Y.applyUpdate(this.doc, update, origin)
        PathTrace.mark(marks, 'apply')
        this.relay(update, origin, marks)
      } catch (err) {
        this.log.error({ event: 'apply_failed', err: String(err) }, 'stored update failed to apply')
        peer?.close(CLOSE_BAD_MESSAGE, 'BAD_UPDATE: update could not be applied')
      }
      this.markApplied(result.seq)
      this.events.emit('update.applied', { room: this, update, origin, seq: result.seq, ms: performance.now() - started })
      if (peer) this.ack(peer, count)
      if (this.compactionDue) this.scheduleCompaction()
    })
    this.tail = done.catch(() => {})
    return done
  }

  /** Records that update `seq` is in the document; out-of-order seqs wait for the gap to fill. */
  private markApplied(seq: number): void {
    if (seq <= this.appliedThrough) return
    if (seq === this.appliedThrough + 1 || !this.options.sharedStore) {
      this.appliedThrough = seq
      while (this.appliedAhead.delete(this.appliedThrough + 1)) this.appliedThrough++
      return
    }
    this.appliedAhead.add(seq)
    this.events.emit('room.gap', { room: this })
  }

  get lastApplied(): number {
    return this.appliedThrough
  }

  /** An update another process stored as `seq` (cluster mode). Relayed to this process's peers. */
  applyRemote(seq: number, update: Uint8Array): void {
    if (this.destroyed || seq <= this.appliedThrough || this.appliedAhead.has(seq)) return
    let applied = false
    try {
      this.options.containment.check('cluster_catch_up', this.name)
      Y.applyUpdate(this.doc, update, REMOTE_ORIGIN)
      this.relay(update, REMOTE_ORIGIN)
      applied = true
    } catch (err) {
      this.options.containment.report('cluster_catch_up', err, { room: this.name, seq })
    }
    // Not counted towards compaction: the process that stored it folds it in.
    this.markApplied(seq)
    if (applied) this.events.emit('update.applied', { room: this, update, origin: REMOTE_ORIGIN, seq, ms: 0 })
  }

  /** Applies what the store holds after `appliedThrough` (cluster mode: heals missed messages). */
  catchUp(since: Omit<StoredSince, 'generation'>): void {
    if (this.destroyed) return
    const parts = [...(since.state ? [since.state.data] : []), ...since.updates.filter((u) => u.seq > this.appliedThrough).map((u) => u.data)]
    let healed: Uint8Array | undefined
    if (parts.length > 0) {
      try {
        this.options.containment.check('cluster_catch_up', this.name)
        // Rare (healing): relay only what was new here, like the doc 'update' event would.
        const before = Y.encodeStateVector(this.doc)
        applyUpdates(this.doc, parts, REMOTE_ORIGIN)
        healed = Y.encodeStateAsUpdate(this.doc, before)
        this.relay(healed, REMOTE_ORIGIN)
      } catch (err) {
        this.options.containment.report('cluster_catch_up', err, { room: this.name })
        return
      }
    }
    if (since.lastSeq > this.appliedThrough) {
      this.appliedThrough = since.lastSeq
      for (const seq of this.appliedAhead) if (seq <= this.appliedThrough) this.appliedAhead.delete(seq)
      while (this.appliedAhead.delete(this.appliedThrough + 1)) this.appliedThrough++
    }
    // [0, 0]: no structs, no deletions (what Yjs encodes when nothing was new here).
    if (healed && !(healed.length === 2 && healed[0] === 0 && healed[1] === 0)) {
      this.events.emit('update.applied', { room: this, update: healed, origin: REMOTE_ORIGIN, seq: this.appliedThrough, ms: 0 })
    }
  }

  /** The room's awareness (read-only use: who is here). */
  get awareness(): Presence['awareness'] {
    return this.presence.awareness
  }

  /** Awareness states from another process's connections; never overrides this process's own. */
  applyRemoteAwareness(processId: string, update: Uint8Array): void {
    if (!this.destroyed) this.presence.applyRemote(processId, update)
  }

  /** Removes the presence of every client of a process that died. */
  removeRemoteProcess(processId: string): void {
    this.presence.removeRemoteProcess(processId)
  }

  /** Processes owning awareness states in this room (cluster mode liveness checks). */
  get remoteProcesses(): Set<string> {
    return this.presence.remoteProcesses
  }

  /** Awareness states of this process's own connections, encoded (for a peer process that asks). */
  encodeLocalAwareness(): Uint8Array | undefined {
    return this.presence.encodeLocal()
  }

  /**
   * Merges an update from the admin API, an import or a restore from the history panel;
   * resolves once stored and relayed. `user`: who asked (recorded in the history log).
   */
  async applyAdminUpdate(received: Uint8Array, user?: User): Promise<void> {
    if (this.failed) throw new CoeditError('ROOM_DELETED', `room "${this.name}" was deleted or could not be loaded: try again`)
    const whole = decodeUpdateChecked(received)
    if (this.tombstone) checkTombstone(whole, this.tombstone)
    const { update, decoded } = partToStore(received, whole, this.doc, this.inflight, 0)
    if (decoded.empty) return
    const depths = checkRoomNesting(decoded, this.doc, this.inflight, this.options.maxNestingDepth ?? 0)
    await this.enqueueWrite(update, decoded, depths, user === undefined ? ADMIN_ORIGIN : { source: 'admin', user }, undefined, 0)
  }

  private ack(peer: Peer, count: number): void {
    if (!peer.wantsAck) return
    const state = this.peers.get(peer)
    if (!state) return
    state.ackDue = count
    if (this.ackDirty.size === 0) queueMicrotask(this.flushAcks)
    this.ackDirty.add(peer)
  }

  private readonly flushAcks = (): void => {
    for (const peer of this.ackDirty) {
      const state = this.peers.get(peer)
      if (state) peer.send(encodeCoeditPersisted(state.ackDue))
    }
    this.ackDirty.clear()
  }

  /**
   * Queues an update just applied to the document for every connection (its sender too
   * with `echo`). A stored update is relayed as received: applying it twice is a no-op in
   * Yjs. What is applied in one tick (a group commit lands many updates at once) goes out
   * at its end, in one socket write per connection; in a room of MERGE_MIN_PEERS or more
   * it is merged into one message first (one frame per connection instead of one per
   * update). Y.mergeUpdates costs about 20 µs an update, more than a frame to a few
   * connections, so small rooms get the updates as they are.
   */
  private relay(update: Uint8Array, origin: UpdateOrigin, marks?: PathMarks): void {
    const sender = (origin as UpdateOrigin | undefined)?.source === 'connection' && !this.options.echo
      ? (origin as Extract<UpdateOrigin, { source: 'connection' }>).peer
      : undefined
    if (this.outbox.length === 0) process.nextTick(Room.flushOutbox, this)
    this.outbox.push(marks ? { update, sender, marks } : { update, sender })
  }

  private static flushOutbox(room: Room): void {
    const out = room.outbox
    room.outbox = []
    if (room.destroyed || out.length === 0) return
    try {
      room.options.containment.check('relay', room.name)
      Room.send(room, out)
      // After the sockets' uncork ticks, queued during send: the frames are with the kernel.
      if (room.options.pathTrace) process.nextTick(Room.traced, room.options.pathTrace, out)
    } catch (err) {
      // Runs on process.nextTick: thrown on, it would end the process. What was applied is
      // stored; the connections missed it, so they reconnect (1011) and resync.
      room.options.containment.report('relay', err, { room: room.name, updates: out.length })
      room.closeAll(CLOSE_INTERNAL_ERROR)
    }
  }

  private static traced(trace: PathTrace, out: Outgoing[]): void {
    for (const o of out) {
      if (!o.marks) continue
      PathTrace.mark(o.marks, 'write')
      trace.done(o.marks)
    }
  }

  private static send(room: Room, out: Outgoing[]): void {
    if (out.length > 1 && room.peers.size < MERGE_MIN_PEERS) {
      for (const { update, sender, marks } of out) {
        const message = encodeSyncUpdate(update)
        PathTrace.mark(marks, 'frame')
        for (const peer of room.peers.keys()) if (peer !== sender) peer.send(message)
      }
      return
    }
    const merge = (updates: Uint8Array[]): Uint8Array => (updates.length === 1 ? updates[0]! : Y.mergeUpdates(updates))
    const message = encodeSyncUpdate(merge(out.map((o) => o.update)))
    for (const o of out) PathTrace.mark(o.marks, 'frame')
    const senders = new Set<Peer>()
    for (const o of out) if (o.sender) senders.add(o.sender)
    for (const peer of room.peers.keys()) {
      if (!senders.has(peer)) {
        peer.send(message)
        continue
      }
      // Without echo a sender gets everything of the tick but its own updates.
      const others = out.filter((o) => o.sender !== peer).map((o) => o.update)
      if (others.length > 0) peer.send(encodeSyncUpdate(merge(others)))
    }
  }

  /**
   * A compaction rewrites the whole document, so besides `compactEvery` updates it waits
   * until the log is a fair share of the state (1/COMPACTION_LOG_SHARE of its bytes): the
   * bytes compaction writes stay proportional to the bytes received, however large the
   * document grows, and a load still replays a bounded log.
   */
  private get compactionDue(): boolean {
    return this.sinceCompaction >= this.options.compactEvery
      && (this.storedBytes - this.stateBytes) * COMPACTION_LOG_SHARE >= this.stateBytes
  }

  private scheduleCompaction(): void {
    if (this.compacting || this.destroyed) return
    const folds = this.folds
    this.compacting = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.compact())
      .finally(() => {
        this.compacting = undefined
        // Updates applied while it ran found it running and scheduled nothing: fold them
        // now if due, unless this one folded nothing (a failing store): no retry loop.
        if (this.folds > folds && this.compactionDue) this.scheduleCompaction()
      })
  }

  private compactChain: Promise<void> = Promise.resolve()
  /** A compaction stored a state since this room was loaded. */
  private foldedSinceLoad = false
  /** Compactions that stored a state. */
  private folds = 0

  /**
   * Folds the update log into one state. The document equals the store through `lastSeq`.
   * Compactions run one at a time: an older state stored after a newer one (whose log
   * prefix is already deleted) would lose the updates in between.
   */
  compact(final = false): Promise<void> {
    const run = this.compactChain.then(() => this.compactNow(final))
    this.compactChain = run
    return run
  }

  private async compactNow(final: boolean): Promise<void> {
    if (this.loadIncomplete || this.compactionFailed) return
    if (this.sinceCompaction === 0 && !(final && this.foldedSinceLoad)) return
    const upTo = this.appliedThrough
    const folded = this.sinceCompaction
    let state: Uint8Array
    try {
      this.options.containment.check('compaction', this.name)
      state = this.fullState ??= Y.encodeStateAsUpdate(this.doc)
    } catch (err) {
      // The stored log stays as it is (nothing lost); later compactions of this room are
      // skipped until it is loaded again, so the error is logged once, not every update.
      this.compactionFailed = true
      this.options.containment.report('compaction', err, { room: this.name })
      return
    }
    // Reading `doc` may have integrated a stored state, and that may have failed the room.
    if (this.failed) return
    if (folded === 0) {
      // Nothing to fold, but the hook may not have kept the last fold's state (history keeps
      // at most one a minute): an unloading room that changed hands its final state over.
      if (final && this.foldedSinceLoad) this.events.emit('room.compacted', { room: this, state, upTo, final: true, updates: 0, ms: 0 })
      return
    }
    const bytesBefore = this.storedBytes
    // Updates still being stored are not in `state`: they stay in the log.
    const inflightBefore = this.inflightBytes
    try {
      const started = performance.now()
      await this.store.compact(this.name, state, upTo, { generation: this.generation })
      this.sinceCompaction -= folded
      this.foldedSinceLoad = true
      this.folds++
      this.storedBytes = state.length + inflightBefore + (this.storedBytes - bytesBefore)
      this.stateBytes = state.length
      const ms = performance.now() - started
      this.log.debug({ event: 'compacted', updates: folded, bytes: state.length, ms: Math.round(ms) }, 'room compacted')
      this.events.emit('room.compacted', { room: this, state, upTo, final, updates: folded, ms })
    } catch (err) {
      if (isRoomDeleted(err)) {
        this.log.info({ event: 'room_deleted_elsewhere' }, 'compaction refused: the room was deleted, closing its connections')
        this.deleted()
        return
      }
      this.log.error({ event: 'compaction_failed', err: String(err) }, 'compaction failed')
      this.events.emit('room.compactionFailed', { room: this, error: err })
    }
  }

  /** Resolves once every update received so far is stored and applied (and any compaction done). */
  async flushed(): Promise<void> {
    let tail
    do {
      tail = this.tail
      await tail
      await this.compacting
    } while (tail !== this.tail || this.compacting)
  }

  get hasPendingWrites(): boolean {
    return this.pendingWrites > 0
  }

  /** Updates received but not yet stored and applied (the transport stops reading above a bound). */
  get writeBacklog(): number {
    return this.pendingWrites
  }

  /** Resolves once every write queued so far is stored and applied; never rejects. */
  writesSettled(): Promise<void> {
    return this.tail
  }

  /** Closes every connection (for shutdown). */
  closeAll(close: CloseCode): void {
    for (const peer of [...this.peers.keys()]) peer.close(close)
  }

  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.presence.destroy()
    this.ydoc.destroy()
  }
}

/** Who made a change of this origin, when known. */
export function userOf(origin: UpdateOrigin): User | undefined {
  return origin.source === 'connection' ? origin.peer.user : origin.source === 'api' || origin.source === 'admin' ? origin.user : undefined
}

/** A room's document: garbage-collected, except content nested too deep for Yjs's recursive GC. */
function roomDoc(): Y.Doc {
  const doc = new Y.Doc({ gc: true })
  keepDeepGarbage(doc)
  return doc
}

/** Passes over a stored log before its failing updates are simply left applied in part. */
const LOAD_PASSES = 3

/**
 * The room's document from its stored log (a state and the updates since). An update that
 * throws is left out, and the document rebuilt without it: it may have applied in part (a
 * deletion cut short by a stack overflow leaves some of the content deleted, and a joiner
 * applying that state would overflow in turn), and a room without the update is one the
 * clients can use. Runs on stored client data at load, so nothing escapes: failures are
 * collected in `failures` for the room to report.
 */
function loadLog(updates: readonly Uint8Array[], failures: unknown[]): Y.Doc {
  let kept = updates.map((update, index) => ({ update, index }))
  for (let pass = 1; ; pass++) {
    const doc = roomDoc()
    const failed = new Set<number>()
    try {
      applyUpdates(doc, kept.map((k) => k.update), LOAD_ORIGIN, (err, i) => {
        failed.add(i)
        failures.push(err)
      })
    } catch (err) {
      // Only the transaction's own cleanup could throw here (each update is caught above).
      failures.push(err)
      return doc
    }
    if (failed.size === 0 || pass === LOAD_PASSES) return doc
    doc.destroy()
    kept = kept.filter((_, i) => !failed.has(i))
  }
}
