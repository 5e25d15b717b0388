/**
 * A room's presence: the awareness states of everyone in it (cursor, name, colour), which
 * connection owns which client ID, the coalesced relay of changes, and the states of other
 * processes' clients in cluster mode. The room hands it messages and departures; it knows
 * connections only as `Peer`.
 *
 * Every state is bounded on arrival, from a connection or from another process alike
 * (PresenceLimits): its size and nesting depth (checked before it is parsed), the client
 * IDs one connection may introduce, and the bytes of all states of the room, so that what
 * a joiner is greeted with stays bounded and nothing held here can break a later encode.
 *
 * A client ID held by one connection and claimed by another (a provider that reconnected
 * before the server noticed its old socket died) goes to the claimant once the owner
 * fails a liveness probe (Peer.probe): a live owner keeps it, a dead one loses it within
 * the probe's timeout instead of the ping interval.
 */
import type * as Y from 'yjs'
import type { Logger } from 'pino'
import * as awarenessProtocol from 'y-protocols/awareness'
import {
  ProtocolError, type AwarenessLimits, type ReceivedAwarenessEntry, decodeAwarenessEntries, encodeAwareness, encodeAwarenessUpdate,
  isAwarenessRemoval, parseAwarenessState, readAwarenessUpdate,
} from './protocol.js'
import type { Peer } from './peer.js'
import type { Containment } from '../base/containment.js'

export interface PresenceLimits extends AwarenessLimits {
  /** Distinct client IDs one connection may introduce over its life (a provider uses one per document). */
  maxClientsPerConnection: number
  /** Bytes of all the room's states as encoded: a joiner's greeting is at most this big. */
  maxRoomBytes: number
}

export const NO_PRESENCE_LIMITS: PresenceLimits = {
  maxStateBytes: Infinity, maxDepth: Infinity, maxClientsPerConnection: Infinity, maxRoomBytes: Infinity,
}

export interface PresenceOptions {
  /** Minimum ms between two relays; changes in between go out merged. */
  interval: number
  /** The connections to relay to. */
  peers: () => Iterable<Peer>
  /** The flush runs on a timer, on states clients sent: an exception there is contained and reported. */
  containment: Containment
  /**
   * Changes made by this process's own connections (or their departure): cluster mode
   * publishes them. Given the encoder, not the bytes: nothing is encoded unless it is asked.
   */
  onLocalChange?: (encode: () => Uint8Array) => void
  limits?: PresenceLimits
  log: Logger
}

/** What a connection may change: the client IDs it introduced. Made on its first new client ID. */
interface Ownership {
  /** The IDs it owns now. */
  readonly ids: Set<number>
  /** Every ID it tried to introduce, owned or not any more (bounded by maxClientsPerConnection). */
  readonly introduced: Set<number>
  /** It has owned an ID (until then its first message's stale clocks are rebased, see receive). */
  claimed: boolean
  /** Added to this connection's clocks of an ID it re-introduced (see receive). */
  clockOffsets?: Map<number, number>
  /** Told the log once that the room's awareness is full. */
  warnedFull?: boolean
}

/** A connection's claim on a client ID another connection owns, waiting for the owner's probe. */
interface Claim {
  /** The owner being probed: the claim is settled by this probe only. */
  readonly owner: Peer
  /** The latest claimant and its entry (clock as it sent it), parsed and within bounds. */
  claimant: Peer
  entry: ReceivedAwarenessEntry
}

/** Transaction origin of states from other processes: never published back to them. */
const REMOTE = Symbol('remote presence')

/**
 * Departed client IDs (no state any more) whose clocks the room remembers. y-protocols keeps
 * a clock per ID forever, so that a late message cannot bring a removed state back; a client
 * cycling through IDs over many connections would grow that without bound. Past this many,
 * the least recently updated half is forgotten (see forgetDeparted).
 */
export const DEPARTED_CLIENTS_KEPT = 1000

/**
 * Forgotten clocks count towards the floor up to here. A client's clock grows by one per
 * change of its presence, so only a forged one gets near; a floor past 2^53 would make
 * shifted clocks inexact.
 */
const CLOCK_FLOOR_MAX = 2 ** 32

export class Presence {
  readonly awareness: awarenessProtocol.Awareness
  private readonly owners = new Map<number, Peer>()
  private readonly ownership = new Map<Peer, Ownership>()
  /** Client IDs owned by connections of other processes, by process id. */
  private readonly remote = new Map<number, string>()
  private dirty = new Set<number>()
  private timer: NodeJS.Timeout | undefined
  private lastFlush = 0
  private destroyed = false
  private readonly limits: PresenceLimits
  /** Encoded bytes of each state held (see ReceivedAwarenessEntry.size), and their sum. */
  private readonly sizes = new Map<number, number>()
  private roomBytes = 0
  /** Sizes of the entries being applied right now, for onUpdate to account. */
  private incoming: Map<number, number> | undefined
  /** Processes whose out-of-bounds states were logged once. */
  private readonly warnedProcesses = new Set<string>()
  /** Pending claims by client ID: at most one per ID owned here. */
  private readonly claims = new Map<number, Claim>()
  /** Connections that have sent an awareness message (their first one may be a claim, see receive). */
  private readonly spoken = new WeakSet<Peer>()
  /**
   * The highest clock of the departed IDs forgotten so far (see forgetDeparted): an ID the
   * room knows nothing of may be one of them, so its clock must pass this, as it would
   * have had to pass its own.
   */
  private clockFloor = 0
  /** The clock of each state held, as it was set (see departures). */
  private readonly stateClocks = new Map<number, number>()
  /**
   * Departed IDs (pruned with their clocks, see forgetDeparted): the clock of their last
   * state, and the departure's number in the room's count of departures. A connection
   * greeted before that number had been sent that state, so what it sends of it is an
   * echo, not a client coming back (see receive).
   */
  private readonly departures = new Map<number, { clock: number; seq: number }>()
  private departuresSeen = 0
  /** Each connection's greeting, as the count of departures then. */
  private readonly greeted = new WeakMap<Peer, number>()

  constructor(private readonly doc: Y.Doc, private readonly options: PresenceOptions) {
    this.limits = options.limits ?? NO_PRESENCE_LIMITS
    this.awareness = new awarenessProtocol.Awareness(doc)
    // The server is not a participant.
    this.awareness.setLocalState(null)
    this.awareness.on('update', this.onUpdate)
  }

  /** Sends a new connection everyone's state, if anyone is here. */
  greet(peer: Peer): void {
    this.greeted.set(peer, this.departuresSeen)
    if (this.awareness.getStates().size > 0) this.answerQuery(peer)
  }

  answerQuery(peer: Peer): void {
    peer.send(encodeAwareness(awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...this.awareness.getStates().keys()])))
  }

  /**
   * A connection left: its states are removed and the removal is sent at once, except the
   * IDs another connection claimed meanwhile, which go to their claimant without a gap.
   */
  remove(peer: Peer): void {
    for (const [id, claim] of this.claims) if (claim.claimant === peer) this.claims.delete(id)
    const own = this.ownership.get(peer)
    if (!own) return
    this.ownership.delete(peer)
    const ids = [...own.ids].filter((id) => this.owners.get(id) === peer)
    const gone: number[] = []
    for (const id of ids) {
      const claim = this.claims.get(id)
      this.claims.delete(id)
      if (claim && this.handOver(id, claim)) continue
      this.owners.delete(id)
      gone.push(id)
    }
    if (gone.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, gone, peer)
    if (ids.length > 0) this.flush()
  }

  /**
   * A connection may only change the client IDs it introduced. Stock providers send back
   * every awareness change they receive, so an entry for an ID nobody here owns is an echo
   * unless it is newer than what we know, or it is in the connection's first awareness
   * message (sent on open, before it heard anything): a client reconnecting with its old
   * ID and clock. Its clock is then shifted past the old one, so everyone accepts it.
   *
   * An entry for an ID another connection owns is dropped too, unless it is a claim: a
   * state (not a removal) in the connection's first awareness message, or newer than what
   * we know (an echo is never newer). That is a client reconnecting with its ID while its
   * old socket is dead but not yet noticed (laptop sleep, Wi-Fi to LTE): the owner is
   * probed, and if it does not answer the ID goes to the claimant (see settle).
   *
   * Bounds: a state over the size or depth limit, or a connection introducing more than
   * maxClientsPerConnection IDs, is a ProtocolError (the connection is closed, nothing of
   * the message is applied); a state that would take the room past maxRoomBytes is dropped
   * (the connection stays, its other entries apply, and its next renewal may fit).
   * Throws ProtocolError on a malformed message.
   */
  receive(peer: Peer, update: Uint8Array): void {
    // Only the entries kept are parsed: a message of many entries for others' IDs (an
    // echo, or a flood) costs one pass over its bytes.
    const own = this.ownership.get(peer)
    const first = own?.claimed !== true
    const firstMessage = !this.spoken.has(peer)
    this.spoken.add(peer)
    const accepted: ReceivedAwarenessEntry[] = []
    const claims = new Map<number, number>()
    /** Entries claiming IDs other connections own (see the method's comment). */
    const contested: ReceivedAwarenessEntry[] = []
    /** IDs whose client's clock passed the room's: their offset goes. */
    const caughtUp: number[] = []
    const fresh = new Set<number>()
    const room = new RoomBudget(this.sizes, this.roomBytes, this.limits.maxRoomBytes)
    // An ID appears once in what providers send; a later duplicate is dropped unparsed, so
    // that one message never costs more parses than the IDs this connection may change.
    const seen = new Set<number>()
    let count = 0
    let rewritten = false
    let full = false
    for (const ref of readAwarenessUpdate(update)) {
      count++
      const id = ref.clientID
      if (id === this.doc.clientID) continue
      // An ID claimed earlier in this message counts as this connection's already.
      const owner = this.owners.get(id) ?? (claims.has(id) ? peer : undefined)
      if (owner !== undefined && owner !== peer) {
        if (seen.has(id) || owner.probe === undefined || isAwarenessRemoval(update, ref)) continue
        if (!firstMessage && ref.clock <= (this.awareness.meta.get(id)?.clock ?? 0)) continue
        seen.add(id)
        // Parsed now, bounded like any state: what a probe may later hand over is checked.
        contested.push(parseAwarenessState(update, ref, this.limits))
        continue
      }
      let offset = claims.get(id) ?? own?.clockOffsets?.get(id) ?? 0
      let e: ReceivedAwarenessEntry
      if (owner === undefined) {
        // Present but owned by no connection here: another process's client (cluster mode).
        if (isAwarenessRemoval(update, ref) || this.awareness.getStates().has(id)) continue
        // An ID never seen, or forgotten: a late message of a forgotten one must not bring it back.
        const known = this.awareness.meta.get(id)?.clock ?? (this.clockFloor > 0 ? this.clockFloor : undefined)
        // The connection's own offset counts: after it removed its state (a client setting
        // null) its raw clocks stay behind the shifted ones the room knows.
        if (known !== undefined && ref.clock + offset <= known) {
          if (!first || this.heard(peer, id, ref.clock)) continue
          offset = known + 1 - ref.clock
        }
        if (seen.has(id)) continue
        seen.add(id)
        // Counted before the state is parsed (so a flood of new IDs costs at most this many
        // parses, whatever their states), and whether or not the room has space for it: a
        // connection cannot try IDs forever.
        if (!own?.introduced.has(id) && !fresh.has(id)) {
          if ((own?.introduced.size ?? 0) + fresh.size >= this.limits.maxClientsPerConnection) {
            throw new ProtocolError('AWARENESS_TOO_MANY_CLIENTS', `a connection may introduce at most ${this.limits.maxClientsPerConnection} awareness client IDs`)
          }
          fresh.add(id)
        }
        e = parseAwarenessState(update, ref, this.limits)
        if (e.state === null) continue
        if (!room.admit(e)) {
          full = true
          continue
        }
        claims.set(id, offset)
      } else {
        if (seen.has(id)) continue
        seen.add(id)
        if (offset !== 0) {
          // A stock provider takes the shifted clock we relay to it for its own ID and
          // sends it back (an echo, dropped); its next clock is past the room's, and the
          // offset is no longer needed. Clients that ignore our clock stay behind and keep it.
          const known = this.awareness.meta.get(id)?.clock ?? 0
          if (ref.clock === known) continue
          if (ref.clock > known) {
            offset = 0
            caughtUp.push(id)
          }
        }
        e = parseAwarenessState(update, ref, this.limits)
        if (!room.admit(e)) {
          full = true
          continue
        }
      }
      if (offset !== 0) rewritten = true
      accepted.push(offset === 0 ? e : { ...e, clock: e.clock + offset })
    }
    // Nothing changes before every entry passed: a refused message leaves no trace.
    let ownership = own
    if (fresh.size > 0 || claims.size > 0) {
      if (!ownership) this.ownership.set(peer, ownership = { ids: new Set(), introduced: new Set(), claimed: false })
      for (const id of fresh) ownership.introduced.add(id)
      for (const [id, offset] of claims) {
        this.owners.set(id, peer)
        ownership.ids.add(id)
        ownership.claimed = true
        if (offset !== 0) (ownership.clockOffsets ??= new Map()).set(id, offset)
        this.remote.delete(id)
      }
    }
    for (const id of caughtUp) own?.clockOffsets?.delete(id)
    for (const e of contested) this.claim(peer, e)
    if (full && ownership && !ownership.warnedFull) {
      ownership.warnedFull = true
      this.options.log.warn({ event: 'awareness_refused', peer: peer.id, code: 'AWARENESS_ROOM_FULL', bytes: this.roomBytes, limit: this.limits.maxRoomBytes }, 'awareness state dropped: the room\'s states reached their total size limit')
    }
    if (accepted.length === 0) return
    const filtered = accepted.length === count && !rewritten ? update : encodeAwarenessUpdate(accepted)
    this.apply(filtered, accepted, peer)
  }

  /**
   * Whether `peer` was sent the state of departed `id` at `clock` or later: it was greeted
   * before the ID departed. A stock provider echoes every change it hears, its first
   * awareness message included when it has no state of its own to send (seed 818940427 of
   * the awareness test: an echo of a state its owner had just removed was taken for the
   * owner coming back, and the echoing connection kept the ID).
   */
  private heard(peer: Peer, id: number, clock: number): boolean {
    const departure = this.departures.get(id)
    if (departure === undefined || clock > departure.clock) return false
    return (this.greeted.get(peer) ?? -1) < departure.seq
  }

  /** Records a claim and probes the ID's owner, once per probe: later claims replace the entry. */
  private claim(claimant: Peer, entry: ReceivedAwarenessEntry): void {
    const id = entry.clientID
    const owner = this.owners.get(id)
    if (owner === undefined || owner.probe === undefined) return
    const pending = this.claims.get(id)
    if (pending?.owner === owner) {
      pending.claimant = claimant
      pending.entry = entry
      return
    }
    this.claims.set(id, { owner, claimant, entry })
    this.options.log.debug({ event: 'presence_claim', client: id, owner: owner.id, claimant: claimant.id }, 'awareness client ID claimed by another connection, probing its owner')
    owner.probe().then(
      (alive) => this.settle(id, owner, alive),
      () => this.settle(id, owner, true),
    )
  }

  /** The owner's probe answered: a live owner keeps the ID, a silent one hands it over. */
  private settle(id: number, owner: Peer, alive: boolean): void {
    const claim = this.claims.get(id)
    if (claim?.owner !== owner || this.destroyed) return
    this.claims.delete(id)
    if (this.owners.get(id) !== owner) return
    if (alive) {
      this.options.log.debug({ event: 'presence_claim_refused', client: id, owner: owner.id, claimant: claim.claimant.id }, 'awareness client ID kept by its owner, which answered the probe')
      return
    }
    if (this.handOver(id, claim)) this.flush()
  }

  /**
   * Gives `id` to the claimant and applies its claimed state, its clock shifted past the
   * one the room knows (as for a reconnect in receive). False when the claimant may not
   * introduce another ID or the room has no space for the state: the owner keeps it.
   */
  private handOver(id: number, claim: Claim): boolean {
    const { claimant, entry } = claim
    const own = this.ownership.get(claimant)
    if (!own?.introduced.has(id) && (own?.introduced.size ?? 0) >= this.limits.maxClientsPerConnection) return false
    if (!new RoomBudget(this.sizes, this.roomBytes, this.limits.maxRoomBytes).admit(entry)) return false
    const known = this.awareness.meta.get(id)?.clock
    const offset = known !== undefined && entry.clock <= known ? known + 1 - entry.clock : 0
    const previous = this.owners.get(id)
    if (previous) this.ownership.get(previous)?.ids.delete(id)
    let ownership = own
    if (!ownership) this.ownership.set(claimant, ownership = { ids: new Set(), introduced: new Set(), claimed: false })
    ownership.introduced.add(id)
    ownership.ids.add(id)
    ownership.claimed = true
    if (offset !== 0) (ownership.clockOffsets ??= new Map()).set(id, offset)
    else ownership.clockOffsets?.delete(id)
    this.owners.set(id, claimant)
    this.options.log.info({ event: 'presence_takeover', client: id, owner: previous?.id, claimant: claimant.id }, 'awareness client ID handed to the connection that claimed it: its owner did not answer')
    const shifted = { ...entry, clock: entry.clock + offset }
    this.apply(encodeAwarenessUpdate([shifted]), [shifted], claimant)
    return true
  }

  /**
   * States from another process's connections; never overrides this process's own. A
   * peer process checks its clients' states as we do ours, but a bad or older peer must
   * not poison the room either: the same bounds apply, and what breaks them is dropped.
   */
  applyRemote(processId: string, update: Uint8Array): void {
    if (this.destroyed) return
    let entries
    try {
      entries = decodeAwarenessEntries(update, this.limits)
    } catch (err) {
      this.warnRemote(processId, err instanceof ProtocolError ? err.code : 'BAD_MESSAGE')
      return
    }
    const room = new RoomBudget(this.sizes, this.roomBytes, this.limits.maxRoomBytes)
    const accepted: ReceivedAwarenessEntry[] = []
    for (const e of entries) {
      if (this.owners.has(e.clientID) || e.clientID === this.doc.clientID) continue
      if (room.admit(e)) accepted.push(e)
      else this.warnRemote(processId, 'AWARENESS_ROOM_FULL')
    }
    if (accepted.length === 0) return
    for (const e of accepted) {
      if (e.state === null) this.remote.delete(e.clientID)
      else this.remote.set(e.clientID, processId)
    }
    this.apply(encodeAwarenessUpdate(accepted), accepted, REMOTE)
  }

  private apply(update: Uint8Array, entries: readonly ReceivedAwarenessEntry[], origin: unknown): void {
    this.incoming = new Map(entries.map((e) => [e.clientID, e.size]))
    try {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, update, origin)
    } finally {
      this.incoming = undefined
    }
    // A removal for an ID without a state sets its clock without any event.
    this.forgetDeparted()
  }

  /**
   * Keeps the clocks of at most DEPARTED_CLIENTS_KEPT departed IDs: past that, forgets the
   * least recently updated half, and raises the clock floor to their highest clock (the
   * receive path then treats an unknown ID as if it had that clock: a connection's first
   * message is shifted past it, a later message at or below it is dropped as stale). O(1)
   * while under the bound; a pruning sorts about 2 × DEPARTED_CLIENTS_KEPT entries once per
   * DEPARTED_CLIENTS_KEPT / 2 departures.
   */
  private forgetDeparted(): void {
    const meta = this.awareness.meta
    const states = this.awareness.getStates()
    // The server's own ID has a clock and never a state.
    if (meta.size - states.size - 1 <= DEPARTED_CLIENTS_KEPT) return
    const departed: Array<[number, { clock: number; lastUpdated: number }]> = []
    for (const entry of meta) if (!states.has(entry[0]) && entry[0] !== this.doc.clientID) departed.push(entry)
    departed.sort((a, b) => a[1].lastUpdated - b[1].lastUpdated)
    for (const [id, m] of departed.slice(0, departed.length - DEPARTED_CLIENTS_KEPT / 2)) {
      meta.delete(id)
      this.departures.delete(id)
      this.clockFloor = Math.max(this.clockFloor, Math.min(m.clock, CLOCK_FLOOR_MAX))
    }
  }

  private warnRemote(processId: string, code: string): void {
    if (this.warnedProcesses.has(processId)) return
    this.warnedProcesses.add(processId)
    this.options.log.warn({ event: 'remote_awareness_refused', process: processId, code }, 'awareness from another process dropped: out of bounds')
  }

  /** Removes the presence of every client of a process that died. */
  removeRemoteProcess(processId: string): void {
    const ids = [...this.remote].filter(([, p]) => p === processId).map(([id]) => id)
    if (ids.length === 0) return
    for (const id of ids) this.remote.delete(id)
    awarenessProtocol.removeAwarenessStates(this.awareness, ids, REMOTE)
  }

  /** Processes owning states here (cluster mode liveness checks). */
  get remoteProcesses(): Set<string> {
    return new Set(this.remote.values())
  }

  /** States of this process's own connections, encoded (for a peer process that asks). */
  encodeLocal(): Uint8Array | undefined {
    const ids = [...this.owners.keys()].filter((id) => this.awareness.getStates().has(id))
    return ids.length > 0 ? awarenessProtocol.encodeAwarenessUpdate(this.awareness, ids) : undefined
  }

  destroy(): void {
    this.destroyed = true
    if (this.timer) clearTimeout(this.timer)
    this.awareness.destroy()
  }

  private readonly onUpdate = (change: { added: number[]; updated: number[]; removed: number[] }, origin: unknown): void => {
    // y-protocols removes states that were not renewed in time with origin 'timeout':
    // every process does that by itself, so it is not news for the others.
    if (this.options.onLocalChange && origin !== REMOTE && origin !== 'timeout') {
      this.options.onLocalChange(() => awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...change.added, ...change.updated, ...change.removed]))
    }
    for (const id of change.added) this.held(id)
    for (const id of change.updated) this.held(id)
    for (const id of change.removed) {
      this.dirty.add(id)
      const clock = this.stateClocks.get(id)
      this.stateClocks.delete(id)
      if (clock !== undefined) this.departures.set(id, { clock, seq: ++this.departuresSeen })
      this.roomBytes -= this.sizes.get(id) ?? 0
      this.sizes.delete(id)
      const owner = this.owners.get(id)
      if (owner) {
        this.owners.delete(id)
        this.ownership.get(owner)?.ids.delete(id)
      }
    }
    if (change.removed.length > 0) this.forgetDeparted()
    this.schedule()
  }

  /** A state was set: it is news, and it weighs what it was received as. */
  private held(id: number): void {
    this.dirty.add(id)
    this.stateClocks.set(id, this.awareness.meta.get(id)?.clock ?? 0)
    this.departures.delete(id)
    const size = this.incoming?.get(id)
    if (size === undefined) return
    this.roomBytes += size - (this.sizes.get(id) ?? 0)
    this.sizes.set(id, size)
  }

  private schedule(): void {
    if (this.timer || this.destroyed) return
    const delay = Math.max(0, this.lastFlush + this.options.interval - Date.now())
    this.timer = setTimeout(() => this.flush(), delay)
  }

  /** Sends every change since the last flush as one message to every connection. */
  private flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.dirty.size === 0) return
    const ids = [...this.dirty]
    this.dirty = new Set()
    this.lastFlush = Date.now()
    const containment = this.options.containment
    containment.run('presence_flush', () => {
      containment.check('presence_flush')
      const message = encodeAwareness(awarenessProtocol.encodeAwarenessUpdate(this.awareness, ids))
      for (const peer of this.options.peers()) peer.send(message)
    }, { clients: ids.length })
  }
}

/**
 * The room's awareness bytes as a message's entries would change them, to drop entries
 * that would take it past the limit. A removal or a state no bigger than the one it
 * replaces always fits (a full room never keeps anyone from renewing or leaving).
 */
class RoomBudget {
  private readonly pending = new Map<number, number>()
  constructor(private readonly sizes: ReadonlyMap<number, number>, private bytes: number, private readonly limit: number) {}

  admit(e: ReceivedAwarenessEntry): boolean {
    const before = this.pending.get(e.clientID) ?? this.sizes.get(e.clientID) ?? 0
    const after = e.state === null ? 0 : e.size
    if (after > before && this.bytes + after - before > this.limit) return false
    this.bytes += after - before
    this.pending.set(e.clientID, after)
    return true
  }
}
