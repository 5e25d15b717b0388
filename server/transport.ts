/**
 * WebSocket transport: the only module that imports `ws`. It turns an HTTP upgrade
 * into a `Peer` of a room, holds the peer's messages until the room has loaded,
 * and finds dead peers by ping/pong.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import type { Logger } from 'pino'
import {
  CLOSE_GOING_AWAY, CLOSE_MESSAGE_TOO_BIG, CLOSE_TRY_AGAIN_LATER, CLOSE_UNSUPPORTED_DATA, closeReason,
  type CloseCode,
} from './close-codes.js'
import { COEDIT_OPT_IN_PARAM } from './protocol.js'
import type { RoomRegistry } from './registry.js'
import type { Peer, Room } from './room.js'
import { parseRoomPath } from './room-name.js'

export interface TransportOptions {
  /** Largest accepted frame in bytes; bigger ones close the connection with 1009. */
  maxMessageSize: number
  /** ms between pings; a peer that has not answered the previous ping is dropped. */
  pingInterval: number
}

let nextPeerId = 1

class WsPeer implements Peer {
  readonly id: string
  readonly wantsAck: boolean
  readonly ws: WebSocket
  readonly openedAt = Date.now()
  alive = true
  bytesIn = 0
  bytesOut = 0
  closeSent: CloseCode | undefined

  constructor(ws: WebSocket, wantsAck: boolean) {
    this.id = (nextPeerId++).toString(36)
    this.ws = ws
    this.wantsAck = wantsAck
  }

  send(message: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    this.bytesOut += message.length
    this.ws.send(message)
  }

  close(close: CloseCode, detail?: string): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) return
    this.closeSent = close
    this.ws.close(close.code, closeReason(detail ?? close.reason))
  }
}

export class Transport {
  private readonly wss: WebSocketServer
  private readonly peers = new Set<WsPeer>()
  private readonly pingTimer: NodeJS.Timeout
  private readonly registry: RoomRegistry
  private readonly log: Logger

  constructor(registry: RoomRegistry, options: TransportOptions, log: Logger) {
    this.registry = registry
    this.log = log
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false,
    })
    this.pingTimer = setInterval(() => this.ping(), options.pingInterval)
    this.pingTimer.unref()
  }

  get connectionCount(): number {
    return this.peers.size
  }

  /** Handles an HTTP upgrade request: refuses a bad room path with 400, otherwise joins the room. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const parsed = parseRoomPath(url.pathname)
    if (!parsed.ok) {
      rejectUpgrade(socket, 400, parsed.error)
      this.log.info({ event: 'upgrade_refused', status: 400, reason: parsed.error }, 'upgrade refused')
      return
    }
    const wantsAck = url.searchParams.get(COEDIT_OPT_IN_PARAM) !== null
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, parsed.room, wantsAck, req))
  }

  private accept(ws: WebSocket, roomName: string, wantsAck: boolean, req: IncomingMessage): void {
    const peer = new WsPeer(ws, wantsAck)
    this.peers.add(peer)
    const ip = req.socket.remoteAddress
    let room: Room | undefined
    let queue: Uint8Array[] | undefined = []
    let closed = false
    this.log.info({ event: 'connection_open', room: roomName, peer: peer.id, ip }, 'connection opened')

    ws.on('pong', () => { peer.alive = true })
    ws.on('message', (data: RawData, isBinary: boolean) => {
      peer.alive = true
      const bytes = toUint8Array(data)
      peer.bytesIn += bytes.length
      if (!isBinary) {
        this.log.warn({ event: 'bad_message', room: roomName, peer: peer.id, code: 'TEXT_FRAME' }, 'text frame, closing connection')
        peer.close(CLOSE_UNSUPPORTED_DATA)
        return
      }
      if (room) room.receive(peer, bytes)
      else queue?.push(bytes)
    })
    ws.on('error', (err: Error & { code?: string }) => {
      // ws has already started closing (1009 for an oversized frame, 1002 for a bad frame).
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') peer.closeSent = CLOSE_MESSAGE_TOO_BIG
      this.log.warn({ event: 'connection_error', room: roomName, peer: peer.id, code: err.code, err: err.message }, 'connection error')
    })
    ws.on('close', (code: number) => {
      closed = true
      queue = undefined
      this.peers.delete(peer)
      room?.removePeer(peer)
      this.log.info({
        event: 'connection_close', room: roomName, peer: peer.id, code, sent: peer.closeSent?.code,
        ms: Date.now() - peer.openedAt, bytesIn: peer.bytesIn, bytesOut: peer.bytesOut,
      }, 'connection closed')
    })

    this.registry.join(roomName, peer).then(
      (joined) => {
        if (closed) {
          joined.removePeer(peer)
          return
        }
        room = joined
        const pending = queue ?? []
        queue = undefined
        for (const bytes of pending) joined.receive(peer, bytes)
      },
      () => peer.close(CLOSE_TRY_AGAIN_LATER, 'room could not be loaded, try again later'),
    )
  }

  private ping(): void {
    for (const peer of this.peers) {
      if (!peer.alive) {
        this.log.info({ event: 'peer_timeout', peer: peer.id }, 'no pong, dropping connection')
        peer.ws.terminate()
        continue
      }
      peer.alive = false
      if (peer.ws.readyState === WebSocket.OPEN) peer.ws.ping()
    }
  }

  /** Closes every connection with 1001 and stops pinging. */
  closeAll(close: CloseCode = CLOSE_GOING_AWAY): void {
    clearInterval(this.pingTimer)
    for (const peer of this.peers) peer.close(close)
  }

  /** Resolves once every connection has closed, terminating stragglers after `timeout` ms. */
  async drained(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    while (this.peers.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    for (const peer of this.peers) peer.ws.terminate()
    this.wss.close()
  }
}

function toUint8Array(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`
  socket.end(
    `HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : 'Error'}\r\n` +
    'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
}
