/**
 * Presence across a reconnect: a client that comes back with its awareness client ID
 * while the server still holds its old, silently dead socket (laptop sleep, Wi-Fi to LTE)
 * gets its presence back within the owner's probe timeout, not after --ping-interval
 * (30 s by default): each test's own timeout is far below that. A live owner keeps its ID.
 *
 * The dead socket is real: the client connects through a TCP relay of the test's that,
 * when frozen, forwards nothing either way while keeping both sockets open (no FIN, no
 * RST), which is what a half-open connection looks like to the server.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { startServer, type CoeditServer } from '../server/index.js'
import { createLogger } from '../server/log.js'
import type { Room } from '../server/room/room.js'
import { encodeAwareness, encodeAwarenessUpdate, encodeQueryAwareness } from '../server/room/protocol.js'
import { connect, synced, waitFor, type Client } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { captureLog as capture, type LogCapture } from './helpers/log-capture.js'

/** Well below the 30 s default ping interval: the old behaviour (wait for the ping check) fails these. */
const TIMEOUT = 15_000

/** A TCP relay to `port` whose open connections can be frozen: bytes either way are dropped. */
class FreezableRelay {
  private frozen = new Set<Socket>()
  private readonly sockets = new Set<Socket>()
  private constructor(private readonly server: Server) {}

  static async start(port: number): Promise<FreezableRelay> {
    const server = createServer()
    const relay = new FreezableRelay(server)
    server.on('connection', (client) => relay.pair(client, tcpConnect(port, '127.0.0.1')))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return relay
  }

  get url(): string {
    const address = this.server.address()
    if (address === null || typeof address === 'string') throw new Error('relay not listening')
    return `ws://127.0.0.1:${address.port}`
  }

  /** Every connection open now goes silent both ways; later ones are relayed. */
  freeze(): void {
    for (const s of this.sockets) this.frozen.add(s)
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }

  private pair(client: Socket, upstream: Socket): void {
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from)
      // Read and dropped when frozen, so neither side sees its buffers fill or its socket end.
      from.on('data', (chunk) => { if (!this.frozen.has(from)) to.write(chunk) })
      from.on('end', () => { if (!this.frozen.has(from)) to.end() })
      from.on('error', () => to.destroy())
      from.on('close', () => {
        this.sockets.delete(from)
        this.frozen.delete(from)
        if (!this.frozen.has(to)) to.destroy()
      })
    }
  }
}

function provider(url: string, room: string, doc: Y.Doc): WebsocketProvider {
  return new WebsocketProvider(url, room, doc, {
    // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    resyncInterval: -1,
  })
}

type States = Map<number, Record<string, unknown>>
const cursorOf = (states: States, id: number): unknown => states.get(id)?.cursor

interface Scene {
  server: CoeditServer
  relay: FreezableRelay
  observer: Client
  /** What the observer sees of everyone's presence. */
  states: States
  /** Destroyed at the end of the test, before the relay and the server close. */
  own<T extends { destroy(): void }>(thing: T): T
}

/** A server, a freezable relay to it and a synced observer of `room`, torn down after the test. */
async function scene(t: TestContext, room: string, log?: LogCapture): Promise<Scene> {
  const server = await startServer({ storage: 'memory', logger: log && createLogger('debug', log.stream) })
  const relay = await FreezableRelay.start(Number(new URL(server.url).port))
  const observer = connect(server.url, room)
  const owned: Array<{ destroy(): void }> = [observer]
  t.after(async () => {
    for (const thing of owned.reverse()) thing.destroy()
    await relay.close()
    await server.close()
  })
  await synced(observer)
  return {
    server, relay, observer,
    states: observer.provider.awareness.getStates() as States,
    own: (thing) => {
      owned.push(thing)
      return thing
    },
  }
}

function hocuspocus(url: string, name: string, doc: Y.Doc): { provider: HocuspocusProvider; destroy(): void } {
  // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
  const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
  const p = new HocuspocusProvider({ websocketProvider: socket, name, document: doc })
  p.attach()
  return { provider: p, destroy: () => { p.destroy(); socket.destroy() } }
}

test('a provider whose socket went silent reconnects with the same client ID: the others see its cursor again within seconds', { timeout: TIMEOUT }, async (t) => {
  const { server, relay, states, own } = await scene(t, 'sleepy')
  const doc = own(new Y.Doc())
  const laptop = own(provider(relay.url, 'sleepy', doc))
  await waitFor(() => laptop.synced, { message: 'laptop synced' })
  const id = doc.clientID
  laptop.awareness.setLocalStateField('cursor', 'before sleep')
  await waitFor(() => cursorOf(states, id) === 'before sleep', { message: 'the observer sees the cursor' })

  // The laptop sleeps: its connection dies without a word; on waking it moves its cursor
  // and its provider opens a new socket (the same provider, awareness and clock).
  relay.freeze()
  laptop.awareness.setLocalStateField('cursor', 'lost in the void')
  laptop.disconnect()
  laptop.awareness.setLocalStateField('cursor', 'after wake')
  laptop.connect()
  const started = Date.now()
  await waitFor(() => cursorOf(states, id) === 'after wake', { timeout: TIMEOUT, message: 'the observer sees the cursor moved after the reconnect' })
  t.diagnostic(`cursor visible again ${Date.now() - started} ms after the reconnect`)
  const room = server.registry.rooms.find((r) => r.name === 'sleepy')!
  assert.equal(room.size, 3, 'the dead socket is left to the ping check: only its client ID moved')

  // The new connection owns the ID now: its later moves go through at once.
  laptop.awareness.setLocalStateField('cursor', 'typing on')
  await waitFor(() => cursorOf(states, id) === 'typing on', { message: 'a later move' })
})

test('a new provider with the same Y.Doc clientID (fresh awareness, clock from 0) takes the ID over from a silent socket', { timeout: TIMEOUT }, async (t) => {
  const { server, relay, states, own } = await scene(t, 'reload')
  const oldDoc = own(new Y.Doc())
  const old = own(provider(relay.url, 'reload', oldDoc))
  const id = oldDoc.clientID
  // A clock well ahead of the new awareness's: the handover must not need a newer clock.
  for (let i = 1; i <= 20; i++) old.awareness.setLocalStateField('cursor', `old ${i}`)
  await waitFor(() => cursorOf(states, id) === 'old 20', { message: 'the observer sees the old cursor' })

  relay.freeze()
  const newDoc = own(new Y.Doc())
  newDoc.clientID = id
  const fresh = own(provider(server.url, 'reload', newDoc))
  fresh.awareness.setLocalStateField('cursor', 'new')
  await waitFor(() => cursorOf(states, id) === 'new', { timeout: TIMEOUT, message: 'the observer sees the new provider\'s cursor' })
  fresh.awareness.setLocalStateField('cursor', 'newer')
  await waitFor(() => cursorOf(states, id) === 'newer', { message: 'a later move of the new provider' })
  // Its state came in shifted past the old clock; the provider took the shifted clock and
  // sent it back. Had that echo been shifted again, the two would bounce it forever.
  const clock = server.registry.rooms.find((r) => r.name === 'reload')!.awareness.meta.get(id)!.clock
  assert.ok(clock <= 25, `the room's clock for the ID stays near the old 20, not running away (${clock})`)
})

test('a Hocuspocus provider whose socket went silent: a new one with the same client ID takes its presence over', { timeout: TIMEOUT }, async (t) => {
  const { server, relay, states, own } = await scene(t, 'hp-sleepy')
  const oldDoc = own(new Y.Doc())
  const old = own(hocuspocus(relay.url, 'hp-sleepy', oldDoc))
  const id = oldDoc.clientID
  old.provider.setAwarenessField('cursor', 'old')
  await waitFor(() => cursorOf(states, id) === 'old', { message: 'the observer sees the old cursor' })

  relay.freeze()
  const newDoc = own(new Y.Doc())
  newDoc.clientID = id
  const fresh = own(hocuspocus(server.url, 'hp-sleepy', newDoc))
  fresh.provider.setAwarenessField('cursor', 'new')
  await waitFor(() => cursorOf(states, id) === 'new', { timeout: TIMEOUT, message: 'the observer sees the new cursor' })
})

test('a live connection claiming another live connection\'s client ID is refused: the owner answers the probe', { timeout: TIMEOUT }, async (t) => {
  const log = capture()
  const { server, states, own } = await scene(t, 'duel', log)
  const owner = own(connect(server.url, 'duel'))
  await synced(owner)
  const id = owner.doc.clientID
  owner.provider.awareness.setLocalStateField('cursor', 'owner')
  await waitFor(() => cursorOf(states, id) === 'owner', { message: 'the owner\'s cursor' })
  const room = server.registry.rooms.find((r) => r.name === 'duel')!
  const known = room.awareness.meta.get(id)!.clock

  const refusals = (): number => log.events('presence_claim_refused').filter((e) => e.client === id).length
  const twinDoc = own(new Y.Doc())
  twinDoc.clientID = id
  const twin = own(provider(server.url, 'duel', twinDoc))
  // Its first awareness message claims the ID...
  twin.awareness.setLocalStateField('cursor', 'twin')
  await waitFor(() => refusals() >= 1, { message: 'the first claim refused' })
  // ...and so does a state with a clock newer than the room's (the twin took the room's
  // clock for its ID from the greeting, as y-protocols does).
  await waitFor(() => (twin.awareness.meta.get(id)?.clock ?? 0) >= known, { message: 'the twin heard the room\'s clock' })
  twin.awareness.setLocalState({ cursor: 'twin again' })
  await waitFor(() => refusals() >= 2, { message: 'the newer claim refused' })

  assert.equal((room.awareness.getStates().get(id) as { cursor?: string } | undefined)?.cursor, 'owner', 'the server keeps the owner\'s state')
  assert.equal(log.events('presence_takeover').length, 0)
  owner.provider.awareness.setLocalStateField('cursor', 'owner moved')
  await waitFor(() => cursorOf(states, id) === 'owner moved', { message: 'the owner still moves its cursor' })
})

test('a flood of claims on a live owner\'s ID costs the owner at most a ping a second, and changes nothing', { timeout: TIMEOUT }, async (t) => {
  const log = capture()
  const server = await startServer({ storage: 'memory', awarenessInterval: 1, logger: createLogger('debug', log.stream) })
  const owner = await RawClient.open(`${server.url}/flood`)
  const intruder = await RawClient.open(`${server.url}/flood`)
  t.after(async () => {
    owner.close()
    intruder.close()
    await server.close()
  })
  let pings = 0
  owner.ws.on('ping', () => { pings++ })
  const presence = (clock: number, state: unknown): Uint8Array => encodeAwareness(encodeAwarenessUpdate([{ clientID: 500, clock, state }]))
  owner.send(presence(1, { name: 'owner' }))
  const room = async (): Promise<Room> => waitFor(() => server.registry.rooms.find((r) => r.name === 'flood'), { message: 'the room' }) as Promise<Room>
  await waitFor(async () => (await room()).awareness.getStates().has(500), { message: 'the owner\'s state' })

  const started = Date.now()
  // Every one newer than the room's clock, so every one is a claim, not an echo.
  for (let i = 0; i < 300; i++) intruder.send(presence(2 + i, { name: `intruder ${i}` }))
  // The answer to a query comes after every message before it was handled.
  const before = intruder.messages.length
  intruder.send(encodeQueryAwareness())
  await intruder.waitForMessage('awareness', before)
  await waitFor(() => log.events('presence_claim_refused').length >= 1, { message: 'a refusal' })
  const seconds = (Date.now() - started) / 1000
  t.diagnostic(`${pings} pings`)
  assert.ok(pings <= 2 + seconds, `${pings} pings in ${seconds.toFixed(1)} s`)
  assert.deepEqual((await room()).awareness.getStates().get(500), { name: 'owner' })
  assert.equal(intruder.closeInfo, undefined, 'claims are not a reason to close a connection')
  assert.equal(log.events('presence_takeover').length, 0)
})
