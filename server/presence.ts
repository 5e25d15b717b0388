/**
 * A room's presence: the awareness states of everyone in it (cursor, name, colour), which
 * connection owns which client ID, the coalesced relay of changes, and the states of other
 * processes' clients in cluster mode. The room hands it messages and departures; it knows
 * connections only as `Peer`.
 */
import type * as Y from 'yjs'
import * as awarenessProtocol from 'y-protocols/awareness'
import { type AwarenessEntry, decodeAwarenessUpdate, encodeAwareness, encodeAwarenessUpdate } from './protocol.js'
import type { Peer } from './room.js'
import type { Containment } from './containment.js'

export interface PresenceOptions {
  /** Minimum ms between two relays; changes in between go out merged. */
  interval: number
  /** The connections to relay to. */
  peers: () => Iterable<Peer>
  /** The flush runs on a timer, on states clients sent: an exception there is contained and reported. */
  containment: Containment
  /** Changes made by this process's own connections (or their departure): cluster mode publishes them. */
  onLocalChange?: (update: Uint8Array) => void
}

/** What a connection may change: the client IDs it introduced. Made on its first awareness message. */
interface Ownership {
  readonly ids: Set<number>
  /** Added to this connection's clocks of an ID it re-introduced (see receive). */
  clockOffsets?: Map<number, number>
}

/** Transaction origin of states from other processes: never published back to them. */
const REMOTE = Symbol('remote presence')

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

  constructor(private readonly doc: Y.Doc, private readonly options: PresenceOptions) {
    this.awareness = new awarenessProtocol.Awareness(doc)
    // The server is not a participant.
    this.awareness.setLocalState(null)
    this.awareness.on('update', this.onUpdate)
  }

  /** Sends a new connection everyone's state, if anyone is here. */
  greet(peer: Peer): void {
    if (this.awareness.getStates().size > 0) this.answerQuery(peer)
  }

  answerQuery(peer: Peer): void {
    peer.send(encodeAwareness(awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...this.awareness.getStates().keys()])))
  }

  /** A connection left: its states are removed and the removal is sent at once. */
  remove(peer: Peer): void {
    const own = this.ownership.get(peer)
    if (!own) return
    this.ownership.delete(peer)
    const ids = [...own.ids].filter((id) => this.owners.get(id) === peer)
    for (const id of ids) this.owners.delete(id)
    if (ids.length > 0) {
      awarenessProtocol.removeAwarenessStates(this.awareness, ids, peer)
      this.flush()
    }
  }

  /**
   * A connection may only change the client IDs it introduced. Stock providers send back
   * every awareness change they receive, so an entry for an ID nobody here owns is an echo
   * unless it is newer than what we know, or it is in the connection's first awareness
   * message (sent on open, before it heard anything): a client reconnecting with its old
   * ID and clock. Its clock is then shifted past the old one, so everyone accepts it.
   * Throws ProtocolError on a malformed message.
   */
  receive(peer: Peer, update: Uint8Array): void {
    const entries = decodeAwarenessUpdate(update)
    // Until the connection has claimed an ID, a stale clock is its own from an earlier
    // connection (rebased below), whatever it sent before (a removal, say).
    let own = this.ownership.get(peer)
    const first = own === undefined
    const accepted: AwarenessEntry[] = []
    let rewritten = false
    for (const e of entries) {
      const id = e.clientID
      if (id === this.doc.clientID) continue
      const owner = this.owners.get(id)
      if (owner !== undefined && owner !== peer) continue
      let offset = own?.clockOffsets?.get(id) ?? 0
      if (owner === undefined) {
        // Present but owned by no connection here: another process's client (cluster mode).
        if (e.state === null || this.awareness.getStates().has(id)) continue
        const known = this.awareness.meta.get(id)?.clock
        // The connection's own offset counts: after it removed its state (a client setting
        // null) its raw clocks stay behind the shifted ones the room knows.
        if (known !== undefined && e.clock + offset <= known) {
          if (!first) continue
          offset = known + 1 - e.clock
        }
        if (!own) this.ownership.set(peer, own = { ids: new Set() })
        this.owners.set(id, peer)
        own.ids.add(id)
        if (offset !== 0) (own.clockOffsets ??= new Map()).set(id, offset)
        this.remote.delete(id)
      }
      if (offset !== 0) rewritten = true
      accepted.push(offset === 0 ? e : { clientID: id, clock: e.clock + offset, state: e.state })
    }
    if (accepted.length === 0) return
    const filtered = accepted.length === entries.length && !rewritten ? update : encodeAwarenessUpdate(accepted)
    awarenessProtocol.applyAwarenessUpdate(this.awareness, filtered, peer)
  }

  /** States from another process's connections; never overrides this process's own. */
  applyRemote(processId: string, update: Uint8Array): void {
    if (this.destroyed) return
    let entries
    try {
      entries = decodeAwarenessUpdate(update)
    } catch {
      return
    }
    const accepted = entries.filter((e) => !this.owners.has(e.clientID) && e.clientID !== this.doc.clientID)
    if (accepted.length === 0) return
    for (const e of accepted) {
      if (e.state === null) this.remote.delete(e.clientID)
      else this.remote.set(e.clientID, processId)
    }
    awarenessProtocol.applyAwarenessUpdate(this.awareness, encodeAwarenessUpdate(accepted), REMOTE)
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
      this.options.onLocalChange(awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...change.added, ...change.updated, ...change.removed]))
    }
    for (const id of change.added) this.dirty.add(id)
    for (const id of change.updated) this.dirty.add(id)
    for (const id of change.removed) {
      this.dirty.add(id)
      const owner = this.owners.get(id)
      if (owner) {
        this.owners.delete(id)
        this.ownership.get(owner)?.ids.delete(id)
      }
    }
    this.schedule()
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
