/**
 * Connection and "saved" status, honestly derived.
 *
 * coedit's protocol extension (opt in with `?coedit=1`): the server sends message type
 * 100, subtype 0, varuint n once the first n document messages (sync step 2 and update)
 * this connection sent are durably stored. The page counts what it sends on each socket
 * (a WebSocket subclass handed to the stock provider) and compares. "Saved" means:
 * connected, synced, our sync step 2 for this connection sent (it carries everything the
 * server lacked, offline edits included), and every document message acknowledged.
 *
 * A local edit that is not yet known to be stored is also remembered in localStorage, so
 * a page reloaded while offline still says its edits are not saved.
 */
import * as decoding from 'lib0/decoding'
import type * as encoding from 'lib0/encoding'
import type { WebsocketProvider } from 'y-websocket'
// The codec module is pure (no I/O, nothing of Node's): esbuild bundles the constants it owns.
import { COEDIT_PERSISTED, MESSAGE_COEDIT, MESSAGE_SYNC, SYNC_STEP2, SYNC_UPDATE } from '../../server/room/protocol.js'

interface SocketCount {
  sent: number
  acked: number
  step2Sent: boolean
}

export type Connection = 'connected' | 'connecting' | 'offline' | 'closed'
export type Saved = 'saved' | 'saving' | 'offline-unsaved' | 'offline' | 'read-only'

const counts = new WeakMap<WebSocket, SocketCount>()

function countOf(ws: WebSocket): SocketCount {
  let c = counts.get(ws)
  if (!c) counts.set(ws, (c = { sent: 0, acked: 0, step2Sent: false }))
  return c
}

/** A WebSocket that counts the document messages it sends, for comparison with the server's acks. */
export function countingWebSocket(Base: typeof WebSocket): typeof WebSocket {
  return class CountingWebSocket extends Base {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : undefined
      // Both type and subtype are single-byte varuints for these messages.
      if (bytes && bytes.length > 1 && bytes[0] === MESSAGE_SYNC && (bytes[1] === SYNC_STEP2 || bytes[1] === SYNC_UPDATE)) {
        const c = countOf(this)
        c.sent++
        if (bytes[1] === SYNC_STEP2) c.step2Sent = true
      }
      super.send(data)
    }
  }
}

export class SaveStatus {
  connection: Connection = 'connecting'
  saved: Saved = 'offline'
  /** Why the server closed the connection for good (a 44xx close: the provider stops retrying). */
  closedReason = ''
  /** The server refuses this client's edits (a read-only token). */
  readOnly = false
  private readonly provider: WebsocketProvider
  private readonly unsavedKey: string
  private unsaved: boolean
  private readonly listeners = new Set<() => void>()

  constructor(provider: WebsocketProvider, room: string) {
    this.provider = provider
    this.unsavedKey = `coedit:unsaved:${room}`
    this.unsaved = readStorage(this.unsavedKey) === '1'
    provider.messageHandlers[MESSAGE_COEDIT] = (
      _encoder: encoding.Encoder, decoder: decoding.Decoder, p: WebsocketProvider, fromSocket: boolean,
    ) => {
      const sub = decoding.readVarUint(decoder)
      // Only the server sends these; a copy from another tab (BroadcastChannel) means nothing here.
      if (sub !== COEDIT_PERSISTED || !fromSocket || !p.ws) return
      const c = countOf(p.ws)
      c.acked = Math.max(c.acked, decoding.readVarUint(decoder))
      this.update()
    }
    provider.on('closed', (event: { code: number; reason: string }) => {
      this.closedReason = event.reason || `closed with code ${event.code}`
      this.update()
    })
    provider.on('status', (event: { status: string }) => {
      if (event.status === 'connected') this.closedReason = ''
      this.update()
    })
    provider.on('sync', () => this.update())
    this.update()
  }

  /** A local edit happened (the provider has already tried to send it). */
  localEdit(): void {
    if (!this.unsaved) {
      this.unsaved = true
      writeStorage(this.unsavedKey, '1')
    }
    this.update()
  }

  setReadOnly(): void {
    this.readOnly = true
    this.update()
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  private isSaved(): boolean {
    const ws = this.provider.ws
    if (!ws || !this.provider.wsconnected || !this.provider.synced) return false
    const c = countOf(ws)
    return c.step2Sent && c.acked >= c.sent
  }

  update(): void {
    const p = this.provider
    const connection: Connection = p.wsconnected ? 'connected'
      : this.closedReason && !p.shouldConnect ? 'closed'
      : p.wsconnecting && p.wsUnsuccessfulReconnects === 0 ? 'connecting' : 'offline'
    let saved: Saved
    if (this.readOnly) {
      // Its edits are never stored, so never acknowledged: "Saving…" would wait forever.
      saved = 'read-only'
    } else if (this.isSaved()) {
      saved = 'saved'
      if (this.unsaved) {
        this.unsaved = false
        removeStorage(this.unsavedKey)
      }
    } else if (connection === 'connected') {
      saved = 'saving'
    } else {
      saved = this.unsaved ? 'offline-unsaved' : 'offline'
    }
    if (connection === this.connection && saved === this.saved && connection !== 'closed') return
    this.connection = connection
    this.saved = saved
    for (const fn of this.listeners) fn()
  }
}

// Storage can be unavailable (private mode, disabled cookies): the editor still works.
function readStorage(key: string): string | null {
  try {
    return localStorage.getItem(key)
  } catch {
    return null
  }
}

export function writeStorage(key: string, value: string): void {
  try {
    localStorage.setItem(key, value)
  } catch {
    // See readStorage.
  }
}

function removeStorage(key: string): void {
  try {
    localStorage.removeItem(key)
  } catch {
    // See readStorage.
  }
}

export { readStorage }
