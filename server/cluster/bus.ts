/**
 * Redis pub/sub as the bus between coedit processes. Only Redis is touched here.
 *
 * Channels are room-keyed, so a process only hears the rooms it has loaded:
 *   <prefix>{<room>}:u   document updates: varuint seq, then the update (already stored)
 *   <prefix>{<room>}:a   awareness: varString process id, varuint kind (0 update, 1 query,
 *                        2 deleted: the room's generation that was deleted, 3 disconnect:
 *                        varuint close code, varString close reason), payload
 * A room deleted g times (its generation, see Store.delete) has channels of its own,
 * `...:u:<g>` and `...:a:<g>`: a process still holding the deleted copy (it has not heard
 * of the delete yet) can neither hear nor be heard by the new one's processes.
 * The `{room}` hash tag keeps a room's channels on one Redis Cluster slot.
 * Liveness: each process refreshes `<prefix>proc:<id>` with a short TTL.
 *
 * Pub/sub is fire-and-forget by design: a message lost while Redis is away is
 * healed from the store (see cluster.ts), never waited for.
 */
import { Redis } from 'ioredis'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { Logger } from 'pino'
import { Redactor } from '../base/redact.js'

export const AWARENESS_UPDATE = 0
export const AWARENESS_QUERY = 1
export const ROOM_DELETED = 2
export const ROOM_DISCONNECT = 3

/** ms to reach Redis at startup (and per later connection attempt) before giving up. */
const CONNECT_TIMEOUT = 5000

export interface BusHandlers {
  update(room: string, generation: number, seq: number, update: Uint8Array): void
  awareness(room: string, generation: number, processId: string, kind: number, payload: Uint8Array): void
  /** (Re)subscribed after a Redis outage: messages may have been missed. */
  reconnected(): void
}

export interface BusOptions {
  url: string
  prefix: string
  processId: string
  /** ms a process counts as alive after its last heartbeat. */
  livenessTtl: number
}

export class RedisBus {
  private readonly pub: Redis
  private readonly sub: Redis
  private readonly options: BusOptions
  private readonly handlers: BusHandlers
  private readonly log: Logger
  private readonly heartbeat: NodeJS.Timeout
  private everReady = false
  private lastError: Error | undefined
  private readonly redactor: Redactor

  private constructor(options: BusOptions, handlers: BusHandlers, log: Logger) {
    this.options = options
    this.handlers = handlers
    this.log = log
    this.redactor = new Redactor([options.url])
    const redisOptions = {
      maxRetriesPerRequest: null, enableAutoPipelining: true, lazyConnect: true, connectTimeout: CONNECT_TIMEOUT,
      retryStrategy: (n: number) => Math.min(50 * n, 1000),
    }
    this.pub = new Redis(options.url, redisOptions)
    this.sub = new Redis(options.url, { ...redisOptions, enableAutoPipelining: false })
    for (const [name, client] of [['pub', this.pub], ['sub', this.sub]] as const) {
      client.on('error', (err: Error) => {
        this.lastError = err
        // Before the first connection an error ends startup instead (one line, see connect).
        if (this.everReady) this.log.warn({ event: 'redis_error', client: name, err: this.redactor.text(err.message) }, 'redis error')
      })
    }
    this.sub.on('ready', () => {
      if (this.everReady) {
        this.log.info({ event: 'redis_reconnected' }, 'redis reconnected, healing from the store')
        this.handlers.reconnected()
      }
      this.everReady = true
    })
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString(), message))
    this.heartbeat = setInterval(() => this.beat(), Math.max(100, Math.floor(options.livenessTtl / 3)))
    this.heartbeat.unref()
  }

  /**
   * Connects both clients, or fails within CONNECT_TIMEOUT with the cause (password
   * redacted) and nothing left running: ioredis would otherwise keep reconnecting and
   * hold the process open after startup failed.
   */
  static async connect(options: BusOptions, handlers: BusHandlers, log: Logger): Promise<RedisBus> {
    const bus = new RedisBus(options, handlers, log)
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        Promise.all([bus.pub.connect(), bus.sub.connect()]),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT / 1000} s`)), CONNECT_TIMEOUT) }),
      ])
      await bus.beat()
      return bus
    } catch (err) {
      clearInterval(bus.heartbeat)
      bus.pub.disconnect()
      bus.sub.disconnect()
      // "Connection is closed." says less than the socket error that caused it.
      throw new Error(bus.redactor.text((bus.lastError ?? (err as Error)).message))
    } finally {
      clearTimeout(timer)
    }
  }

  private channel(room: string, kind: 'u' | 'a', generation: number): string {
    // Generation 0 keeps the name it always had: processes of an older coedit still hear it.
    return `${this.options.prefix}{${encodeURIComponent(room)}}:${kind}${generation > 0 ? `:${generation}` : ''}`
  }

  private onMessage(channel: string, message: Buffer): void {
    const m = /\{([^}]*)\}:([ua])(?::(\d{1,15}))?$/.exec(channel)
    if (!m) return
    let room: string
    try {
      room = decodeURIComponent(m[1]!)
      const generation = Number(m[3] ?? 0)
      const decoder = decoding.createDecoder(message)
      if (m[2] === 'u') {
        const seq = decoding.readVarUint(decoder)
        this.handlers.update(room, generation, seq, decoding.readTailAsUint8Array(decoder))
      } else {
        const processId = decoding.readVarString(decoder)
        if (processId === this.options.processId) return
        const kind = decoding.readVarUint(decoder)
        this.handlers.awareness(room, generation, processId, kind, decoding.readTailAsUint8Array(decoder))
      }
    } catch (err) {
      this.log.warn({ event: 'bus_bad_message', channel, err: String(err) }, 'unreadable bus message ignored')
    }
  }

  async subscribe(room: string, generation: number): Promise<void> {
    await this.sub.subscribe(this.channel(room, 'u', generation), this.channel(room, 'a', generation))
  }

  async unsubscribe(room: string, generation: number): Promise<void> {
    await this.sub.unsubscribe(this.channel(room, 'u', generation), this.channel(room, 'a', generation))
  }

  publishUpdate(room: string, generation: number, seq: number, update: Uint8Array): void {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, seq)
    encoding.writeUint8Array(e, update)
    this.publish(this.channel(room, 'u', generation), encoding.toUint8Array(e))
  }

  publishAwareness(room: string, generation: number, kind: number, payload: Uint8Array): void {
    const e = encoding.createEncoder()
    encoding.writeVarString(e, this.options.processId)
    encoding.writeVarUint(e, kind)
    encoding.writeUint8Array(e, payload)
    this.publish(this.channel(room, 'a', generation), encoding.toUint8Array(e))
  }

  private publish(channel: string, message: Uint8Array): void {
    // While Redis is away nothing is queued: the other processes heal from the store.
    if (this.pub.status !== 'ready') return
    this.pub.publish(channel, Buffer.from(message.buffer, message.byteOffset, message.byteLength)).catch((err: Error) => {
      this.log.warn({ event: 'bus_publish_failed', err: this.redactor.text(err.message) }, 'publish failed')
    })
  }

  private async beat(): Promise<void> {
    if (this.pub.status !== 'ready') return
    await this.pub.set(`${this.options.prefix}proc:${this.options.processId}`, '1', 'PX', this.options.livenessTtl).catch(() => {})
  }

  /** The ids among `processIds` whose heartbeat has lapsed. Unknown while Redis is away: none. */
  async dead(processIds: readonly string[]): Promise<string[]> {
    if (processIds.length === 0 || this.pub.status !== 'ready') return []
    const alive = await this.pub.mget(processIds.map((id) => `${this.options.prefix}proc:${id}`)).catch(() => undefined)
    if (!alive) return []
    return processIds.filter((_, i) => alive[i] === null)
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat)
    await this.pub.del(`${this.options.prefix}proc:${this.options.processId}`).catch(() => {})
    this.pub.disconnect()
    this.sub.disconnect()
  }
}
