/**
 * Cluster mode: rooms shared by several coedit processes through PostgreSQL (the
 * store, and the truth) and Redis (the bus, a fast path only).
 *
 * - A process stores an update in PostgreSQL, applies it, then publishes it; others
 *   apply what they hear. So the durability rule holds cluster-wide: nobody on any
 *   process receives an update that is not stored.
 * - A process never depends on the bus: on a gap in a room's sequence, after a Redis
 *   reconnect, and every `healInterval` anyway, it reads what it missed from the store.
 * - Awareness crosses processes on the bus; the presence of a dead process's clients
 *   is removed once its heartbeat lapses.
 * - A room deleted by one process (see Store.delete) is ended by the others: at once when
 *   the bus carries the notice, else at the next heal, which finds the room's generation
 *   grown. Meanwhile their writes for it are refused by the store.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { ReplicaStore } from '../persistence/store.js'
import type { Room } from '../room/room.js'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { AWARENESS_QUERY, AWARENESS_UPDATE, ROOM_DELETED, ROOM_DISCONNECT, RedisBus } from './bus.js'
import { closeReason, sendableCloseCode, type CloseCode } from '../room/close-codes.js'

export interface ClusterOptions {
  redisUrl: string
  /** Key and channel prefix, so several clusters (or test runs) share one Redis. */
  redisPrefix: string
  /** ms between checks of the store for updates the bus did not deliver. */
  healInterval: number
  /** ms after its last heartbeat a process counts as dead (its clients' presence is removed). */
  livenessTtl: number
}

/**
 * Subscribed to the server's events in server.ts: `before('room.loaded')` → attach,
 * `room.unloaded` → detach, local `update.applied` → published, `awareness.local` →
 * awareness, `room.gap` → gap, `room.deleted` (this process deleted a room) → deleted,
 * `room.disconnected` (rooms.disconnect here) → disconnect. Updates and awareness from other processes go to the
 * room directly (applyRemote, catchUp, applyRemoteAwareness).
 */
export class Cluster {
  readonly processId = randomBytes(6).toString('base64url')
  private bus!: RedisBus
  private readonly store: ReplicaStore
  private readonly options: ClusterOptions
  private readonly log: Logger
  private readonly rooms = new Map<string, Room>()
  private readonly healing = new Map<string, Promise<void>>()
  private healTimer: NodeJS.Timeout | undefined

  private constructor(store: ReplicaStore, options: ClusterOptions, log: Logger) {
    this.store = store
    this.options = options
    this.log = log.child({ process: this.processId })
  }

  static async start(store: ReplicaStore, options: ClusterOptions, log: Logger): Promise<Cluster> {
    const cluster = new Cluster(store, options, log)
    cluster.bus = await RedisBus.connect(
      { url: options.redisUrl, prefix: options.redisPrefix, processId: cluster.processId, livenessTtl: options.livenessTtl },
      {
        update: (room, generation, seq, update) => {
          const loaded = cluster.rooms.get(room)
          if (loaded?.generation === generation) loaded.applyRemote(seq, update)
        },
        awareness: (room, generation, processId, kind, payload) => cluster.onAwareness(room, generation, processId, kind, payload),
        reconnected: () => cluster.onReconnected(),
      },
      cluster.log,
    )
    cluster.healTimer = setInterval(() => void cluster.tick(), options.healInterval)
    cluster.healTimer.unref()
    cluster.log.info({ event: 'cluster_joined' }, 'cluster mode: PostgreSQL store, Redis bus')
    return cluster
  }

  /** A room was loaded here: hear its channel, then read what was stored meanwhile. */
  async attach(room: Room): Promise<void> {
    this.rooms.set(room.name, room)
    try {
      await this.bus.subscribe(room.name, room.generation)
    } catch (err) {
      this.log.warn({ event: 'subscribe_failed', room: room.name, err: String(err) }, 'subscribe failed; healing from the store only')
    }
    // Ask the other processes for their clients' presence in this room.
    this.bus.publishAwareness(room.name, room.generation, AWARENESS_QUERY, new Uint8Array(0))
    await this.heal(room)
  }

  detach(room: Room): void {
    if (this.rooms.get(room.name) !== room) return
    this.rooms.delete(room.name)
    this.bus.unsubscribe(room.name, room.generation).catch(() => {})
  }

  /** This process deleted `room`'s generation `generation`: the processes holding that copy end it. */
  deleted(room: string, generation: number): void {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, generation)
    this.bus.publishAwareness(room, generation, ROOM_DELETED, encoding.toUint8Array(e))
  }

  /**
   * This process closed `room`'s connections (rooms.disconnect): the others close theirs.
   * Published on the channel of the room's generation in the store, the one every process
   * serving the room now listens to (a copy of a deleted generation is being ended anyway).
   */
  async disconnect(room: string, close: CloseCode): Promise<void> {
    const loaded = this.rooms.get(room)
    let generation = loaded?.generation ?? 0
    try {
      generation = (await this.store.lastSeqs([room])).get(room)?.generation ?? generation
    } catch (err) {
      this.log.warn({ event: 'disconnect_generation_unknown', room, err: String(err) }, 'store unreachable: the disconnect notice goes to the loaded generation')
    }
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, close.code)
    encoding.writeVarString(e, close.reason)
    this.bus.publishAwareness(room, generation, ROOM_DISCONNECT, encoding.toUint8Array(e))
  }

  /** A local update is durable as `seq`: tell the other processes. */
  published(room: Room, seq: number, update: Uint8Array): void {
    this.bus.publishUpdate(room.name, room.generation, seq, update)
  }

  /** Awareness changes made by this process's own connections. */
  awareness(room: Room, update: Uint8Array): void {
    this.bus.publishAwareness(room.name, room.generation, AWARENESS_UPDATE, update)
  }

  /** The store says the room's generation is `generation`: a copy of an older one was deleted meanwhile. */
  private stale(room: Room, generation: number): boolean {
    if (generation <= room.generation) return false
    if (this.rooms.get(room.name) === room) {
      this.log.info({ event: 'room_deleted_elsewhere', room: room.name }, 'the room was deleted by another process, closing its connections')
      room.deleted()
    }
    return true
  }

  /** Sequence numbers skipped ahead: fetch what is missing from the store. */
  gap(room: Room): void {
    void this.heal(room)
  }

  /** Reads everything after what the room holds; one read per room at a time. */
  private heal(room: Room): Promise<void> {
    const running = this.healing.get(room.name)
    if (running) return running
    const done = (async () => {
      try {
        const since = await this.store.readSince(room.name, room.lastApplied)
        if (this.stale(room, since.generation)) return
        if (since.lastSeq > room.lastApplied || since.state) room.catchUp(since)
      } catch (err) {
        this.log.warn({ event: 'heal_failed', room: room.name, err: String(err) }, 'catch-up from the store failed')
      } finally {
        this.healing.delete(room.name)
      }
    })()
    this.healing.set(room.name, done)
    return done
  }

  private onAwareness(roomName: string, generation: number, processId: string, kind: number, payload: Uint8Array): void {
    const room = this.rooms.get(roomName)
    if (!room || room.generation !== generation) return
    if (kind === AWARENESS_UPDATE) room.applyRemoteAwareness(processId, payload)
    else if (kind === AWARENESS_QUERY) {
      const local = room.encodeLocalAwareness()
      if (local) this.bus.publishAwareness(roomName, generation, AWARENESS_UPDATE, local)
    } else if (kind === ROOM_DELETED) {
      this.stale(room, decoding.readVarUint(decoding.createDecoder(payload)) + 1)
    } else if (kind === ROOM_DISCONNECT) {
      const d = decoding.createDecoder(payload)
      const code = decoding.readVarUint(d)
      const reason = closeReason(decoding.readVarString(d))
      // Checked again: a malformed notice must not make ws throw inside the room.
      if (!sendableCloseCode(code)) throw new Error(`close code ${code} cannot be sent`)
      const closed = room.disconnect({ code, reason })
      this.log.info({ event: 'room_disconnected', room: roomName, code, connections: closed, by: processId }, 'room disconnected by another process')
    }
  }

  private onReconnected(): void {
    for (const room of this.rooms.values()) {
      void this.heal(room)
      const local = room.encodeLocalAwareness()
      if (local) this.bus.publishAwareness(room.name, room.generation, AWARENESS_UPDATE, local)
      this.bus.publishAwareness(room.name, room.generation, AWARENESS_QUERY, new Uint8Array(0))
    }
  }

  /** Periodic safety net: rooms behind the store catch up; dead processes' presence goes. */
  private async tick(): Promise<void> {
    const rooms = [...this.rooms.values()]
    if (rooms.length === 0) return
    try {
      const stored = await this.store.lastSeqs(rooms.map((r) => r.name))
      for (const room of rooms) {
        const now = stored.get(room.name)
        if (now && this.stale(room, now.generation)) continue
        if ((now?.lastSeq ?? 0) > room.lastApplied) void this.heal(room)
      }
    } catch (err) {
      this.log.warn({ event: 'heal_check_failed', err: String(err) }, 'store check failed')
    }
    const processes = new Set<string>()
    for (const room of rooms) for (const p of room.remoteProcesses) processes.add(p)
    const dead = await this.bus.dead([...processes])
    for (const processId of dead) {
      this.log.info({ event: 'process_gone', peerProcess: processId }, 'removing presence of a process that stopped')
      for (const room of rooms) room.removeRemoteProcess(processId)
    }
  }

  async close(): Promise<void> {
    if (this.healTimer) clearInterval(this.healTimer)
    await Promise.allSettled(this.healing.values())
    await this.bus.close()
  }
}
