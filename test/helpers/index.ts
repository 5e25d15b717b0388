/**
 * Test helpers: servers on port 0 in temp dirs, stock y-websocket providers, polling.
 * Every provider is created with `disableBc: true`: providers in one process would
 * otherwise sync through BroadcastChannel without the server and prove nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { startServer, type CoeditServer, type StartOptions } from '../../server/index.js'

export async function tempDir(prefix = 'coedit-test-'): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}

/**
 * How long a wait may take before the test fails: a hang guard, not a deadline. Things
 * waited for take milliseconds on an idle machine and can take seconds on one loaded
 * with other test files and CPU hogs; a passing wait returns as soon as its condition holds.
 */
export const HANG_GUARD_MS = 20_000

/** Polls `check` until it returns truthy (or stops throwing); fails after `timeout` ms with `message`. */
export async function waitFor<T>(check: () => T | Promise<T>, { timeout = HANG_GUARD_MS, interval = 10, message = 'condition' } = {}): Promise<T> {
  const deadline = Date.now() + timeout
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${lastError ? `: ${String(lastError)}` : ''}`)
    }
    await new Promise((r) => setTimeout(r, interval))
  }
}

/** The HTTP status a WebSocket upgrade gets, with the socket when it opened (101); the caller closes it. */
export function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once('open', () => resolve({ status: 101, ws }))
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      resolve({ status: res.statusCode ?? 0 })
    })
    ws.once('error', reject)
  })
}

export interface Client {
  doc: Y.Doc
  provider: WebsocketProvider
  text: Y.Text
  destroy(): void
}

/** A stock y-websocket 3 provider on `room`. */
export function connect(url: string, room: string, options: { doc?: Y.Doc; connect?: boolean; params?: Record<string, string> } = {}): Client {
  const doc = options.doc ?? new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, {
    // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    connect: options.connect ?? true,
    params: options.params ?? {},
    resyncInterval: -1,
  })
  return {
    doc,
    provider,
    text: doc.getText('text'),
    destroy: () => {
      provider.destroy()
      doc.destroy()
    },
  }
}

export function synced(client: Client, timeout = HANG_GUARD_MS): Promise<unknown> {
  return waitFor(() => client.provider.synced, { timeout, message: 'provider synced' })
}

/** A small seeded PRNG (mulberry32), so randomized tests replay from a printed seed. */
export { prng } from './prng.js'

/** The seed for a randomized test: SEED from the environment to replay, else a fresh one. */
export function testSeed(): number {
  return process.env.SEED ? Number(process.env.SEED) : Math.floor(Math.random() * 2 ** 31)
}

/** A server for one test and a list for its clients: the clients are destroyed and the server closed after the test. */
export async function serverWithClients(t: { after(fn: () => Promise<void> | void): void }, options: StartOptions = {}): Promise<{ server: CoeditServer; clients: Client[] }> {
  const server = await startServer({ port: 0, ...options })
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.close()
  })
  return { server, clients }
}
