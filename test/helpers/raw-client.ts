/**
 * A hand-driven WebSocket client that speaks the wire protocol byte by byte, for
 * tests that send malformed frames, count frames, or stop answering pings.
 */
import WebSocket from 'ws'
import * as Y from 'yjs'
import { decodeServerMessage, type ServerMessage } from '../../server/room/protocol.js'
import { HANG_GUARD_MS, waitFor } from './index.js'

export interface Closed {
  code: number
  reason: string
}

export class RawClient {
  readonly ws: WebSocket
  readonly messages: ServerMessage[] = []
  /** Frames received, decodable or not. */
  frames = 0
  closeInfo: Closed | undefined
  readonly closed: Promise<Closed>
  readonly opened: Promise<void>

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options)
    this.ws.binaryType = 'nodebuffer'
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
    })
    // Errors after opening are reported through 'close'.
    this.ws.on('error', () => {})
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code: number, reason: Buffer) => {
        this.closeInfo = { code, reason: reason.toString() }
        resolve(this.closeInfo)
      })
    })
    this.ws.on('message', (data: Buffer) => {
      this.frames++
      try {
        this.messages.push(decodeServerMessage(new Uint8Array(data)))
      } catch {
        // Kept out of `messages`; `frames` still counts it.
      }
    })
  }

  static async open(url: string, options?: WebSocket.ClientOptions): Promise<RawClient> {
    const client = new RawClient(url, options)
    await client.opened
    return client
  }

  send(bytes: Uint8Array | string): void {
    this.ws.send(bytes, { binary: typeof bytes !== 'string' })
  }

  /** Resolves with the first received message (from index `from`) that matches. */
  waitForMessage<T extends ServerMessage['type']>(type: T, from = 0, timeout = HANG_GUARD_MS): Promise<Extract<ServerMessage, { type: T }>> {
    type M = Extract<ServerMessage, { type: T }>
    return waitFor(() => this.messages.slice(from).find((m): m is M => m.type === type),
      { timeout, message: `a ${type} message` }) as Promise<M>
  }

  /** A doc holding every document update this client received. */
  docFromMessages(): Y.Doc {
    const doc = new Y.Doc()
    for (const m of this.messages) {
      if (m.type === 'sync-step2' || m.type === 'sync-update') Y.applyUpdate(doc, m.update)
    }
    return doc
  }

  /** The close code and reason, failing after `timeout` ms if the server never closes. */
  async waitClosed(timeout = HANG_GUARD_MS): Promise<Closed> {
    return waitFor(() => this.closeInfo, { timeout, message: 'the server to close the connection' }) as Promise<Closed>
  }

  close(): void {
    this.ws.terminate()
  }
}
