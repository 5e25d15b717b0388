/**
 * A hand-driven WebSocket client that speaks the wire protocol byte by byte, for
 * tests that send malformed frames, count frames, or stop answering pings.
 */
import WebSocket from 'ws'
import * as Y from 'yjs'
import { startServer, type CoeditServer, type StartOptions } from '../../server/index.js'
import { decodeServerMessage, type ServerMessage } from '../../server/room/protocol.js'
import { HANG_GUARD_MS, connect, synced, waitFor } from './index.js'

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

export interface PresenceScene {
  server: CoeditServer
  /** What a stock provider in the room sees of everyone's presence (live). */
  states: Map<number, unknown>
  /** A raw client in the room, greeted (its sync step 1 received) before it is returned. */
  open(): Promise<RawClient>
  /** Closed after the test with the rest; a test that opens a raw client its own way adds it here. */
  raws: RawClient[]
}

/**
 * For presence tests: a server (awareness relayed at once, `options` on top), a stock provider
 * watching `room`'s presence, and raw clients that speak for client IDs by hand; all of it closed
 * after the test.
 */
export async function presenceScene(t: { after(fn: () => Promise<void>): void }, room: string, options: StartOptions = {}): Promise<PresenceScene> {
  const server = await startServer({ storage: 'memory', awarenessInterval: 1, ...options })
  const observer = connect(server.url, room)
  const raws: RawClient[] = []
  t.after(async () => {
    for (const r of raws) r.close()
    observer.destroy()
    await server.close()
  })
  await synced(observer)
  const open = async (): Promise<RawClient> => {
    const r = await RawClient.open(`${server.url}/${room}`)
    raws.push(r)
    await r.waitForMessage('sync-step1')
    return r
  }
  return { server, states: observer.provider.awareness.getStates(), open, raws }
}
