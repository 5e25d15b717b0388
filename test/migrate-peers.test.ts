/**
 * `coedit migrate` from data the real servers wrote: `@y/websocket-server` with
 * YPERSISTENCE (y-leveldb) and Hocuspocus with `@hocuspocus/extension-sqlite`, both run as
 * child processes from the bench peers' install (scripts/bench/peers), fed by stock
 * providers over rooms with odd names (spaces, `/`, `%`, unicode). After the migration
 * every room exports from coedit the JSON its source holds, and a provider using the same
 * URL or document name as before sees the old content.
 *
 * The source is read with the source's own libraries (y-leveldb; better-sqlite3 from the
 * peers' install), not with coedit's readers, so the comparison is not coedit against itself.
 */
import { describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { startServer } from '../server/index.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'
import { ROOT, runCli } from './helpers/child-server.js'
import { freePort } from './helpers/services.js'

const PEERS = join(ROOT, 'scripts', 'bench', 'peers')
const PEER_MODULES = join(PEERS, 'node_modules')
const YWSS = join(PEER_MODULES, '@y', 'websocket-server', 'src', 'server.js')
const installed = existsSync(YWSS) && existsSync(join(PEER_MODULES, '@hocuspocus', 'extension-sqlite')) && existsSync(join(PEER_MODULES, 'better-sqlite3'))
if (!installed && process.env.CI) throw new Error('CI: the bench peers are not installed in scripts/bench/peers (npm run bench:install)')
const SKIP = installed ? false : 'scripts/bench/peers/node_modules is absent: `npm run bench:install` installs the real servers'

/** Room names as a client gives them (the y-websocket provider puts them in the URL as they are). */
const ROOMS = ['team/notes', 'Q3 50% plan', 'café ☕ 日本', '100%', 'weird%2Fslash']
// Each stock y-websocket provider listens to the process's 'exit'; three per room here.
process.setMaxListeners(4 * ROOMS.length)

/**
 * The document's JSON as coedit's `export --format json` writes it, computed here from the
 * roots the writers use. (Compared with deep equality: a map's keys come in the order each
 * replica integrated them.)
 */
function jsonOf(doc: Y.Doc): Record<string, unknown> {
  return {
    list: doc.getArray('list').toJSON(),
    meta: doc.getMap('meta').toJSON(),
    prosemirror: doc.getXmlFragment('prosemirror').toString(),
    text: doc.getText('text').toString(),
  }
}

/** The path a provider's WebSocket asks for (URL rules: spaces and unicode percent-encoded, a lone `%` kept), without its `/`. */
function urlPath(room: string): string {
  return new URL(`ws://host/${room}`).pathname.slice(1)
}

function docOf(update: Uint8Array): Y.Doc {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc
}

/** Edits as an editor makes them, one transaction each, so the server stores many updates. */
function edit(doc: Y.Doc, room: string, writer: number): void {
  const text = doc.getText('text')
  doc.transact(() => text.insert(text.length, `${room} by writer ${writer}. `))
  doc.transact(() => text.insert(0, '✎ '))
  doc.transact(() => text.delete(0, 1))
  doc.transact(() => {
    const meta = doc.getMap('meta')
    meta.set(`writer ${writer}`, { room, nested: { deep: [writer, 'ünïcødé'] } })
    meta.set('title', room)
  })
  doc.transact(() => doc.getArray('list').push([writer, `${room} ${writer}`, { n: writer }]))
  doc.transact(() => {
    const p = new Y.XmlElement('paragraph')
    p.insert(0, [new Y.XmlText(`paragraph ${writer} of ${room}`)])
    doc.getXmlFragment('prosemirror').push([p])
  })
}

/** A peer server as a child process; killed at the end of the test whatever happens. */
class PeerProcess {
  private output = ''
  readonly exited: Promise<number | null>

  private constructor(private readonly child: ChildProcess, readonly port: number) {
    const keep = (d: Buffer): void => { this.output = (this.output + d.toString()).slice(-4000) }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  static async start(t: TestContext, command: (port: number) => { args: string[]; env?: Record<string, string> }): Promise<PeerProcess> {
    const port = await freePort()
    const { args, env = {} } = command(port)
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    const peer = new PeerProcess(child, port)
    t.after(() => peer.kill())
    let exited = false
    void peer.exited.then(() => { exited = true })
    await waitFor(async () => {
      if (exited) throw new Error(`exited before listening: ${peer.output}`)
      return canConnect(port)
    }, { timeout: 30_000, message: `the peer server on port ${port}` })
    return peer
  }

  /** Sends `signal` and waits for the exit; SIGKILL if it has not exited after 10 s. */
  async stop(signal: NodeJS.Signals): Promise<number | null> {
    this.child.kill(signal)
    const timer = setTimeout(() => this.kill(), 10_000)
    const code = await this.exited
    clearTimeout(timer)
    return code
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

interface LeveldbPersistence {
  getAllDocNames(): Promise<string[]>
  getYDoc(name: string): Promise<Y.Doc>
  destroy(): Promise<void>
}

/** Every document of a y-leveldb directory, by its stored name, read with y-leveldb. */
async function readLeveldb(dir: string): Promise<Map<string, Uint8Array>> {
  const moduleName = 'y-leveldb'
  const { LeveldbPersistence } = await import(moduleName) as { LeveldbPersistence: new (dir: string) => LeveldbPersistence }
  const db = new LeveldbPersistence(dir)
  try {
    const out = new Map<string, Uint8Array>()
    for (const name of await db.getAllDocNames()) {
      const doc = await db.getYDoc(name)
      out.set(name, Y.encodeStateAsUpdate(doc))
      doc.destroy()
    }
    return out
  } finally {
    await db.destroy()
  }
}

interface Sqlite {
  prepare(sql: string): { all(): Array<{ name: string; data: Uint8Array }> }
  close(): void
}

/** Every document of a Hocuspocus SQLite file, read with the better-sqlite3 Hocuspocus wrote it with. */
function readSqlite(file: string): Map<string, Uint8Array> {
  const Database = createRequire(join(PEER_MODULES, 'noop.js'))('better-sqlite3') as new (file: string, options: { readonly: boolean }) => Sqlite
  const db = new Database(file, { readonly: true })
  try {
    return new Map(db.prepare('SELECT name, data FROM documents').all().map((r) => [r.name, new Uint8Array(r.data)]))
  } finally {
    db.close()
  }
}

const ADMIN = 'admin-token-of-the-migrate-peers-test'

/** What coedit exports of `room` as JSON (the admin API behind `coedit export --format json --server`). */
async function exportJson(httpUrl: string, room: string): Promise<unknown> {
  const res = await fetch(`${httpUrl}/admin/rooms/${encodeURIComponent(room)}/export?format=json`, { headers: { Authorization: `Bearer ${ADMIN}` } })
  assert.equal(res.status, 200, `export ${room}: ${await res.clone().text()}`)
  return res.json() as Promise<unknown>
}

describe('coedit migrate from data written by the real servers', { skip: SKIP }, () => {
  test('--from y-leveldb: a directory @y/websocket-server wrote; the same URLs reach the same content', { timeout: 180_000 }, async (t) => {
    const dir = await tempDir()
    t.after(() => dir.remove())
    const ldb = join(dir.path, 'ywss')
    // Two writers in every room, editing at once through the server.
    const writers = new Map(ROOMS.map((room) => [room, [new Y.Doc(), new Y.Doc()]]))
    t.after(() => { for (const docs of writers.values()) for (const d of docs) d.destroy() })
    const wanted = (room: string): Record<string, unknown> => jsonOf(writers.get(room)![0]!)
    const writerDocs = new Set([...writers.values()].flat())

    // y-websocket-server stores each update through a promise chain and exits on SIGTERM
    // without waiting for it: a round ends when the directory holds what the writers have;
    // a round that lost the tail of the chain is run again (the writers send what is missing).
    let stored = new Map<string, Uint8Array>()
    for (let round = 1; ; round++) {
      const peer = await PeerProcess.start(t, (port) => ({ args: [YWSS], env: { HOST: '127.0.0.1', PORT: String(port), YPERSISTENCE: ldb } }))
      const clients: Client[] = []
      try {
        for (const [room, docs] of writers) for (const doc of docs) clients.push(connect(peer.url, room, { doc }))
        await Promise.all(clients.map((c) => synced(c)))
        if (round === 1) writers.forEach((docs, room) => docs.forEach((doc, i) => edit(doc, room, i + 1)))
        for (const [room, docs] of writers) {
          // The writers converged through the server, and a fresh reader gets it all from it.
          await waitFor(() => docs.every((d) => isDeepStrictEqual(jsonOf(d), wanted(room))), { message: `${room}: writers converge` })
          const reader = connect(peer.url, room)
          clients.push(reader)
          await waitFor(() => isDeepStrictEqual(jsonOf(reader.doc), wanted(room)), { message: `${room}: the server has every edit` })
        }
      } finally {
        // The writers' documents live on to the next round; the readers' go with them.
        for (const c of clients) {
          if (writerDocs.has(c.doc)) c.provider.destroy()
          else c.destroy()
        }
        await peer.stop('SIGTERM')
      }
      stored = await readLeveldb(ldb)
      const missing = ROOMS.filter((room) => {
        const update = stored.get(urlPath(room))
        return update === undefined || !isDeepStrictEqual(jsonOf(docOf(update)), wanted(room))
      })
      t.diagnostic(`round ${round}: ${missing.length === 0 ? 'everything stored' : `edits not stored in ${missing.join(', ')}`}`)
      if (missing.length === 0) break
      assert.ok(round < 5, 'y-websocket-server stored the writers\' edits within 5 rounds')
    }
    // It keys each room by the URL path as sent, still percent-encoded.
    assert.deepEqual([...stored.keys()].sort(), ROOMS.map(urlPath).sort())

    const data = join(dir.path, 'coedit')
    const run = await runCli(['migrate', '--from', 'y-leveldb', ldb, '--data', data, '--json'])
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.stdout) as Array<{ source: string; room: string; ok: boolean }>
    assert.ok(report.every((r) => r.ok), run.stdout)
    const server = await startServer({ dataDir: data, adminToken: ADMIN })
    t.after(() => server.close())
    for (const { source, room } of report) {
      // The JSON of what the source held, read with y-leveldb, is what coedit exports.
      assert.deepEqual(await exportJson(server.httpUrl, room), jsonOf(docOf(stored.get(source)!)), `${source} → ${room}`)
    }
    for (const room of ROOMS) {
      // The room name exactly as the client gave it to its provider before the switch.
      const c = connect(server.url, room)
      t.after(() => c.destroy())
      await synced(c)
      assert.deepEqual(jsonOf(c.doc), wanted(room), room)
    }
  })

  test('--from hocuspocus-sqlite: a file Hocuspocus wrote with @hocuspocus/extension-sqlite; the same document names reach the same content', { timeout: 180_000 }, async (t) => {
    const dir = await tempDir()
    t.after(() => dir.remove())
    const file = join(dir.path, 'db.sqlite')
    const hp = (url: string, name: string, doc: Y.Doc): { provider: HocuspocusProvider; destroy(): void } => {
      // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
      const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
      const provider = new HocuspocusProvider({ websocketProvider: socket, name, document: doc })
      provider.attach()
      return { provider, destroy: () => { provider.destroy(); socket.destroy() } }
    }
    const writers = new Map(ROOMS.map((room) => [room, [new Y.Doc(), new Y.Doc()]]))
    t.after(() => { for (const docs of writers.values()) for (const d of docs) d.destroy() })
    const wanted = (room: string): Record<string, unknown> => jsonOf(writers.get(room)![0]!)

    const peer = await PeerProcess.start(t, (port) => ({ args: ['--import', 'tsx', join(PEERS, 'hocuspocus.ts'), String(port), file] }))
    const clients: Array<ReturnType<typeof hp>> = []
    let exit: number | null
    try {
      for (const [room, docs] of writers) for (const doc of docs) clients.push(hp(peer.url, room, doc))
      await waitFor(() => clients.every((c) => c.provider.isSynced), { message: 'every Hocuspocus provider synced' })
      writers.forEach((docs, room) => docs.forEach((doc, i) => edit(doc, room, i + 1)))
      for (const [room, docs] of writers) {
        await waitFor(() => docs.every((d) => isDeepStrictEqual(jsonOf(d), wanted(room))), { message: `${room}: writers converge` })
      }
      await waitFor(() => clients.every((c) => !c.provider.hasUnsyncedChanges), { message: 'every edit acknowledged' })
    } finally {
      for (const c of clients) c.destroy()
      // Hocuspocus stores every loaded document on SIGTERM before it exits.
      exit = await peer.stop('SIGTERM')
    }
    assert.equal(exit, 0, 'Hocuspocus exited cleanly')
    const stored = readSqlite(file)
    assert.deepEqual([...stored.keys()].sort(), [...ROOMS].sort(), 'Hocuspocus names documents as the provider does')
    for (const room of ROOMS) assert.deepEqual(jsonOf(docOf(stored.get(room)!)), wanted(room), `${room}: stored by Hocuspocus`)

    const data = join(dir.path, 'coedit')
    const run = await runCli(['migrate', '--from', 'hocuspocus-sqlite', file, '--data', data, '--json'])
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.stdout) as Array<{ source: string; room: string; ok: boolean }>
    assert.deepEqual(report.map((r) => r.room).sort(), [...ROOMS].sort())
    const server = await startServer({ dataDir: data, adminToken: ADMIN })
    t.after(() => server.close())
    for (const room of ROOMS) assert.deepEqual(await exportJson(server.httpUrl, room), jsonOf(docOf(stored.get(room)!)), room)
    for (const room of ROOMS) {
      const doc = new Y.Doc()
      const c = hp(server.url, room, doc)
      t.after(() => { c.destroy(); doc.destroy() })
      await waitFor(() => c.provider.isSynced, { message: `${room}: synced with coedit` })
      assert.deepEqual(jsonOf(doc), wanted(room), room)
    }
  })
})
