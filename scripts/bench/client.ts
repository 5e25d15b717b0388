/**
 * Protocol-level load clients. They speak just enough of each server's dialect to do
 * the sync handshake and to send and receive real Yjs updates, without integrating
 * received updates into a document: the load generator must not be the bottleneck.
 *
 * Dialects:
 *   y      y-websocket (coedit, @y/websocket-server): [type][payload]
 *   hocus  Hocuspocus: [varString document][type][payload], and an auth message first
 *   raw    the raw ws broadcast server: y framing, no handshake (it does no CRDT work)
 */
import WebSocket from 'ws'
import * as Y from 'yjs'

export type Dialect = 'y' | 'hocus' | 'raw'

const MESSAGE_SYNC = 0
const MESSAGE_AUTH = 2
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2
const AUTH_TOKEN = 0

/** Marker embedded in update content: `TS:<writer>:<seq>:<microseconds>;`. */
const MARKER = Buffer.from('TS:')
const SEMI = 0x3b
const COLON = 0x3a

export function marker(writer: number, seq: number): string {
  return `TS:${writer}:${seq}:${Math.round(performance.now() * 1000)};`
}

export interface Mark {
  writer: number
  seq: number
  /** performance.now() in ms when the writer made the update. */
  sentAt: number
}

/** Calls `each` for every marker in `bytes` (a Yjs update holds its inserted text verbatim). */
export function scanMarks(bytes: Buffer, each: (writer: number, seq: number, sentAt: number) => void): void {
  let i = bytes.indexOf(MARKER)
  while (i !== -1) {
    let p = i + 3
    const fields = [0, 0, 0]
    let f = 0
    let ok = false
    for (; p < bytes.length; p++) {
      const c = bytes[p]!
      if (c === SEMI) { ok = f === 2; break }
      if (c === COLON) { if (++f > 2) break; continue }
      if (c < 0x30 || c > 0x39) break
      fields[f] = fields[f]! * 10 + (c - 0x30)
    }
    if (ok) each(fields[0]!, fields[1]!, fields[2]! / 1000)
    i = bytes.indexOf(MARKER, p)
  }
}

/** Every marker in a text (for checking what a restarted server still holds). */
export function marksInText(text: string): Mark[] {
  const marks: Mark[] = []
  for (const m of text.matchAll(/TS:(\d+):(\d+):(\d+);/g)) {
    marks.push({ writer: Number(m[1]), seq: Number(m[2]), sentAt: Number(m[3]) / 1000 })
  }
  return marks
}

function varUint(out: number[], n: number): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
}

function varString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'utf8')
  varUint(out, bytes.length)
  for (const b of bytes) out.push(b)
}

export interface ClientOptions {
  /** Receives the payload of every sync step 2 and update message. */
  onUpdate?: (update: Buffer, step2: boolean) => void
  /** Connection timeout in ms. */
  timeout?: number
}

export class LoadClient {
  readonly ws: WebSocket
  readonly dialect: Dialect
  /** Resolves when the handshake is done (sync step 2 received, or open for raw). */
  readonly ready: Promise<void>
  closed = false
  private readonly prefix: Buffer
  private onUpdate: ((update: Buffer, step2: boolean) => void) | undefined

  constructor(baseUrl: string, room: string, dialect: Dialect, options: ClientOptions = {}) {
    this.dialect = dialect
    this.onUpdate = options.onUpdate
    const prefix: number[] = []
    if (dialect === 'hocus') varString(prefix, room)
    this.prefix = Buffer.from(prefix)
    const url = dialect === 'hocus' ? baseUrl : `${baseUrl}/${encodeURIComponent(room)}`
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.ws.binaryType = 'nodebuffer'
    let resolveReady!: () => void
    let rejectReady!: (err: Error) => void
    this.ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject })
    let synced = false
    const timer = setTimeout(() => rejectReady(new Error(`handshake timeout (${room})`)), options.timeout ?? 30_000)
    this.ready.then(() => clearTimeout(timer), () => clearTimeout(timer))
    this.ws.on('error', (err) => rejectReady(err))
    this.ws.on('close', () => {
      this.closed = true
      rejectReady(new Error(`closed before handshake (${room})`))
    })
    this.ws.on('open', () => {
      if (dialect === 'raw') {
        synced = true
        resolveReady()
        return
      }
      if (dialect === 'hocus') {
        const auth = [...this.prefix]
        varUint(auth, MESSAGE_AUTH)
        varUint(auth, AUTH_TOKEN)
        varString(auth, 'bench')
        this.ws.send(Buffer.from(auth))
      }
      // Sync step 1 with an empty state vector: "send me everything".
      this.ws.send(Buffer.concat([this.prefix, Buffer.from([MESSAGE_SYNC, 0, 1, 0])]))
    })
    this.ws.on('message', (data: Buffer) => {
      let p = this.prefix.length
      if (data.length <= p + 1 || data[p] !== MESSAGE_SYNC) return
      const sub = data[p + 1]
      if (sub !== SYNC_STEP2 && sub !== SYNC_UPDATE) return
      p += 2
      let len = 0
      let mult = 1
      for (;;) {
        const b = data[p++]
        if (b === undefined) return
        len += (b & 0x7f) * mult
        if (b < 0x80) break
        mult *= 128
      }
      const update = data.subarray(p, p + len)
      if (sub === SYNC_STEP2 && !synced) {
        synced = true
        resolveReady()
      }
      this.onUpdate?.(update, sub === SYNC_STEP2)
    })
  }

  setOnUpdate(onUpdate: ((update: Buffer, step2: boolean) => void) | undefined): void {
    this.onUpdate = onUpdate
  }

  /** Sends a Yjs update as a sync "update" message. */
  sendUpdate(update: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const head: number[] = [...this.prefix, MESSAGE_SYNC, SYNC_UPDATE]
    varUint(head, update.length)
    this.ws.send(Buffer.concat([Buffer.from(head), update]))
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate()
  }
}

/** Makes real Yjs updates: each appends one marker to a text. */
export class Writer {
  readonly id: number
  seq = 0
  private readonly doc: Y.Doc
  private readonly text: Y.Text
  private last: Uint8Array | undefined

  constructor(id: number) {
    this.id = id
    this.doc = new Y.Doc()
    this.text = this.doc.getText('t')
    this.doc.on('update', (u: Uint8Array) => { this.last = u })
  }

  next(): Uint8Array {
    this.seq++
    this.text.insert(this.text.length, marker(this.id, this.seq))
    const u = this.last!
    this.last = undefined
    return u
  }
}

const STAMP_DIGITS = 15

/**
 * One Yjs v1 update that appends `text` (ASCII) to the root text `t`, written by hand
 * because a Y.Doc merges consecutive appends of one client into one ever-growing string
 * (quadratic over hundreds of thousands of updates). Layout, as Yjs writes it:
 * 1 client, 1 struct, client, clock, info (ContentString, with a left origin unless
 * first), origin (client, clock - 1) or parent ("t" as a root key), string, empty delete set.
 */
function appendUpdate(client: number, clock: number, text: string): Buffer {
  const out: number[] = [1, 1]
  varUint(out, client)
  varUint(out, clock)
  if (clock === 0) {
    out.push(4, 1)
    varString(out, 't')
  } else {
    out.push(0x84)
    varUint(out, client)
    varUint(out, clock - 1)
  }
  varString(out, text)
  out.push(0)
  return Buffer.from(out)
}

/**
 * A writer for S5, where the load generator must spend next to nothing per update: the
 * updates are made in advance with a fixed-width placeholder timestamp, which `next()`
 * overwrites in place (same length, so the update stays valid).
 */
export class PregeneratedWriter {
  readonly id: number
  readonly client: number
  seq = 0
  private readonly updates: Buffer[] = []
  private readonly stampAt: number[] = []
  private clock = 0

  constructor(id: number, client = 0x5e5e5e) {
    this.id = id
    this.client = client
  }

  /** Makes sure `n` updates exist beyond the current one. */
  prepare(n: number): void {
    while (this.updates.length < this.seq + n) {
      const seq = this.updates.length + 1
      const text = `TS:${this.id}:${seq}:${'0'.repeat(STAMP_DIGITS)};`
      const u = appendUpdate(this.client, this.clock, text)
      this.clock += text.length
      this.updates.push(u)
      this.stampAt.push(u.length - 2 - STAMP_DIGITS)
    }
  }

  next(): Buffer {
    if (this.seq >= this.updates.length) this.prepare(10_000)
    const u = this.updates[this.seq]!
    const at = this.stampAt[this.seq]!
    this.seq++
    u.write(String(Math.round(performance.now() * 1000)).padStart(STAMP_DIGITS, '0'), at, 'latin1')
    return u
  }

  /** Starts again from the first update (for the next server: same content, fresh data). */
  rewind(): void {
    this.seq = 0
  }
}

/**
 * A full client (applies what it receives to a Y.Doc), for checking what a server holds:
 * cold loads and what survived a kill -9.
 */
export async function fetchDoc(baseUrl: string, room: string, dialect: Dialect, until: (doc: Y.Doc) => boolean, timeout: number, idleMs = Infinity): Promise<{ doc: Y.Doc; ms: number; complete: boolean }> {
  const doc = new Y.Doc()
  const started = performance.now()
  let done!: () => void
  const finished = new Promise<void>((resolve) => { done = resolve })
  // Gives up once nothing has arrived for `idleMs` (a server that lost the content).
  let idle: NodeJS.Timeout | undefined
  const client = new LoadClient(baseUrl, room, dialect, {
    timeout,
    onUpdate: (update) => {
      Y.applyUpdate(doc, update)
      if (until(doc)) done()
      clearTimeout(idle)
      if (Number.isFinite(idleMs)) idle = setTimeout(done, idleMs)
    },
  })
  const timer = setTimeout(done, timeout)
  void finished.then(() => clearTimeout(idle))
  try {
    await Promise.race([client.ready.catch(() => {}), finished])
    await finished
  } finally {
    clearTimeout(timer)
    client.close()
  }
  const complete = until(doc)
  return { doc, ms: performance.now() - started, complete }
}
