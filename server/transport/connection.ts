/**
 * A WebSocket connection: `WsPeer` is any socket (send with corking, the slow-consumer
 * close, liveness), `YPeer` a y-websocket one, the peer of one room.
 */
import type { Duplex } from 'node:stream'
import { WebSocket } from 'ws'
import * as wsModule from 'ws'
import { CLOSE_SLOW_CONSUMER, closeReason, type CloseCode } from '../room/close-codes.js'
import type { Room } from '../room/room.js'
import type { Peer, User } from '../room/peer.js'
import type { EventSink } from '../room/events.js'
import type { ConnectionRate } from './limits.js'
import type { TransportEvents, WireProtocol } from './transport.js'

/** A slow consumer gets this long to take its close frame before the socket is destroyed. */
export const SLOW_CLOSE_GRACE = 1000

/**
 * A probed connection (see Peer.probe) that shows no sign of life this long after a ping
 * is taken for dead: well above a live client's round trip, far below --ping-interval.
 */
export const PROBE_TIMEOUT = 2000
/** At most one probe ping per connection this often, however many claims ask for one. */
const PROBE_GAP = 1000

let nextPeerId = 1

export class WsPeer implements Peer {
  readonly id: string
  readonly wantsAck: boolean
  readonly ws: WebSocket
  readonly readOnly: boolean
  user?: User
  readonly openedAt = Date.now()
  alive = true
  bytesIn = 0
  bytesOut = 0
  closeSent: CloseCode | undefined
  events: EventSink<TransportEvents> | undefined
  /** Largest message queued since the send buffer was last empty: one big message (a large document's sync) is no sign of a slow reader. */
  private largestPending = 0
  /** The socket is corked until the end of this tick: all frames sent in it go out in one write. */
  private corked = false
  /** The probe in flight, and how to end it when the connection is heard from. */
  private probing: Promise<boolean> | undefined
  private probeHeard: (() => void) | undefined
  private lastProbe = 0
  /** A static function with an argument, not a closure per connection: idle connections are many. */
  private static uncork(peer: WsPeer): void {
    peer.corked = false
    socketOf(peer.ws)?.uncork()
  }

  constructor(
    ws: WebSocket,
    readonly protocol: WireProtocol,
    wantsAck: boolean,
    readOnly: boolean,
    private readonly maxBuffered: number,
    /** Shared by every connection (a closure each would be kept as long as the connection). */
    private readonly onSlow: (peer: WsPeer, backlog: number) => void,
  ) {
    this.id = (nextPeerId++).toString(36)
    this.ws = ws
    this.wantsAck = wantsAck
    this.readOnly = readOnly
  }

  send(message: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const backlog = this.ws.bufferedAmount
    if (backlog === 0) this.largestPending = 0
    if (this.maxBuffered > 0 && backlog > this.maxBuffered + this.largestPending) {
      this.onSlow(this, backlog)
      this.close(CLOSE_SLOW_CONSUMER)
      // It is not reading, so it will not read the close frame either: free the buffers soon.
      setTimeout(() => this.ws.terminate(), SLOW_CLOSE_GRACE).unref()
      return
    }
    this.largestPending = Math.max(this.largestPending, message.length)
    this.bytesOut += message.length
    if (this.events?.listens('message.sent')) this.events.emit('message.sent', { message, protocol: this.protocol })
    const socket = socketOf(this.ws)
    if (!socket) {
      this.ws.send(message)
      return
    }
    if (!this.corked) {
      // A group commit applies many updates in one tick; without this each would cost
      // every connection a syscall. Uncorked once the tick's microtasks are done.
      this.corked = true
      socket.cork()
      process.nextTick(WsPeer.uncork, this)
    }
    if (message.length > MAX_SHARED_FRAME) this.ws.send(message)
    else socket.write(frameOf(message))
  }

  close(close: CloseCode, detail?: string): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) return
    this.closeSent = close
    this.ws.close(close.code, closeReason(detail ?? close.reason))
  }

  /** A frame or a pong arrived: the connection is alive. */
  heard(): void {
    this.alive = true
    this.probeHeard?.()
  }

  /**
   * Pings now (or PROBE_GAP after the previous probe ended) and resolves true on any frame
   * or pong, false if none comes within PROBE_TIMEOUT. Concurrent callers share one probe.
   */
  probe(): Promise<boolean> {
    if (this.probing) return this.probing
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.resolve(false)
    this.probing = new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (alive: boolean): void => {
        clearTimeout(timer)
        this.probing = undefined
        this.probeHeard = undefined
        this.lastProbe = Date.now()
        resolve(alive)
      }
      this.probeHeard = () => done(true)
      const ping = (): void => {
        if (this.ws.readyState !== WebSocket.OPEN) return done(false)
        this.ws.ping()
        timer = setTimeout(() => {
          // After this turn's I/O, as the sweep does: a stalled loop runs the overdue timer
          // before it reads a pong that arrived in time.
          setImmediate(() => { if (this.probeHeard) done(false) })
        }, PROBE_TIMEOUT)
        timer.unref()
      }
      const wait = this.lastProbe + PROBE_GAP - Date.now()
      if (wait <= 0) return ping()
      timer = setTimeout(ping, wait)
      timer.unref()
    })
    return this.probing
  }
}

/** A y-websocket connection: the peer of one room, and what its socket's listeners need. */
export class YPeer extends WsPeer {
  room: Room | undefined
  /** Frames received while the room loads (undefined once it is there, or closed). */
  queue: Uint8Array[] | undefined = []
  queuedBytes = 0
  closed = false
  /** The close code, once closed (for `peer.left` if the room was still loading). */
  closeCode = 0
  paused = false
  /** Set when the socket was paused while the room loaded: resolved once it has loaded. */
  loaded: ((room: Room) => void) | undefined
  expiry: NodeJS.Timeout | undefined

  constructor(
    ws: WebSocket,
    readonly roomName: string,
    wantsAck: boolean,
    readOnly: boolean,
    maxBuffered: number,
    onSlow: (peer: WsPeer, backlog: number) => void,
    readonly rate: ConnectionRate,
  ) {
    super(ws, 'y-websocket', wantsAck, readOnly, maxBuffered, onSlow)
  }

  /** Stops reading the socket until `settled` (TCP pushes back on the client meanwhile). */
  pauseUntil(settled: Promise<unknown>): void {
    this.paused = true
    this.ws.pause()
    void settled.then(() => {
      this.paused = false
      if (!this.closed) this.ws.resume()
    })
  }
}

/**
 * Frames at most this big are built once and shared; a bigger message (a large document's
 * sync step 2, sent to one connection) goes through ws, which writes it without a copy.
 */
const MAX_SHARED_FRAME = 64 * 1024
// ws's frame encoder; @types/ws does not declare the Sender class that ws exports.
const { Sender } = wsModule as unknown as { Sender: { frame(data: Uint8Array, options: object): Uint8Array[] } }
const BINARY_FRAME = { fin: true, opcode: 0x02, mask: false, readOnly: false, rsv1: false }
let framedMessage: Uint8Array | undefined
let framed: Buffer = Buffer.alloc(0)

/**
 * The WebSocket frame of `message`. A room relays one message object to all its
 * connections, so the last frame is kept: one header and one copy per message, not per
 * connection, and one socket write each instead of ws's two. Writing frames straight to
 * the socket is safe because ws queues nothing of its own here: compression is off and
 * no Blob is ever sent, so its sender writes each frame synchronously as well.
 */
function frameOf(message: Uint8Array): Buffer {
  if (message !== framedMessage) {
    framed = Buffer.concat(Sender.frame(message, BINARY_FRAME))
    framedMessage = message
  }
  return framed
}

/** The TCP socket under a `ws` WebSocket (`_socket` is internal to ws 8, hence the guard). */
function socketOf(ws: WebSocket): Duplex | undefined {
  const socket = (ws as unknown as { _socket?: Duplex })._socket
  return socket && typeof socket.cork === 'function' ? socket : undefined
}
