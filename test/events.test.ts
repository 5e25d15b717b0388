/**
 * The event surface (server/base/events.ts): a listener that throws, rejects or never settles
 * is contained and counted and never stops the others; `before` listeners are awaited and
 * their failure is the action's (a room load fails cleanly, and the next one succeeds).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Events } from '../server/base/events.js'
import { createContainment, type ContainedPath, type FaultSpec } from '../server/base/containment.js'
import { createLogger } from '../server/log.js'
import { RoomRegistry } from '../server/room/registry.js'
import { MemoryStore } from '../server/persistence/memory.js'
import type { RegistryBeforeEvents, RegistryEvents } from '../server/room/registry.js'
import type { RoomEvents } from '../server/room/room.js'
import { waitFor } from './helpers/index.js'

type Line = Record<string, unknown>

function harness(faults: FaultSpec[] = []): { events: Events<{ ping: { room: string; n: number } }>; counted: ContainedPath[]; lines: () => Line[] } {
  let text = ''
  const stream = new Writable({ write(chunk: Buffer, _e, done) { text += chunk.toString(); done() } })
  const counted: ContainedPath[] = []
  const containment = createContainment({ log: createLogger('info', stream), count: (path) => counted.push(path), inject: faults })
  return {
    events: new Events(containment),
    counted,
    lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line),
  }
}

test('a listener that throws or rejects is logged and counted as kind hook; the others still run, in order', async () => {
  const { events, counted, lines } = harness()
  const seen: string[] = []
  events.on('ping', () => { throw new Error('sync bug') }, 'thrower')
  events.on('ping', async () => { throw new Error('async bug') }, 'rejecter')
  events.on('ping', () => new Promise(() => {}), 'never settles')
  events.on('ping', ({ n }) => { seen.push(`last ${n}`) }, 'last')
  events.emit('ping', { room: 'r', n: 1 })
  events.emit('ping', { room: 'r', n: 2 })
  assert.deepEqual(seen, ['last 1', 'last 2'], 'emit is synchronous and the good listener ran every time')
  await waitFor(() => counted.length === 4, { message: 'two sync and two async failures counted' })
  assert.deepEqual(counted, ['hook', 'hook', 'hook', 'hook'])
  const contained = lines().filter((l) => l.event === 'contained_error')
  assert.deepEqual(contained.map((l) => l.subscriber).sort(), ['rejecter', 'rejecter', 'thrower', 'thrower'])
  assert.ok(contained.every((l) => l.path === 'hook' && l.emitted === 'ping' && l.room === 'r'))
})

test('unsubscribing during an emit: that emit still reaches everyone it started with, later ones do not', () => {
  const { events } = harness()
  const seen: string[] = []
  let offB = (): void => {}
  events.on('ping', () => { seen.push('a'); offB() })
  offB = events.on('ping', () => { seen.push('b') })
  events.emit('ping', { room: 'r', n: 1 })
  events.emit('ping', { room: 'r', n: 2 })
  assert.deepEqual(seen, ['a', 'b', 'a'])
  assert.equal(events.listens('ping'), true)
})

test('fault injection hook:ROOM makes every listener throw for that room only', async () => {
  const { events, counted } = harness(['hook:victim'])
  const seen: string[] = []
  events.on('ping', ({ room }) => { seen.push(room) })
  events.emit('ping', { room: 'victim', n: 1 })
  events.emit('ping', { room: 'canary', n: 2 })
  assert.deepEqual(seen, ['canary'])
  assert.deepEqual(counted, ['hook'])
})

test('before listeners are awaited in order; a rejection fails the room load cleanly and the next load succeeds', async () => {
  const containment = createContainment({ log: createLogger('silent') })
  const events = new Events<RegistryEvents & RoomEvents, RegistryBeforeEvents>(containment)
  const told: string[] = []
  events.on('room.loaded', ({ room }) => { told.push(`loaded ${room.name}`) })
  events.on('room.loadFailed', ({ room, code }) => { told.push(`failed ${room} ${code}`) })
  events.on('room.unloaded', ({ room, reason }) => { told.push(`unloaded ${room.name} ${reason}`) })
  let attachFails = true
  const order: string[] = []
  events.before('room.loaded', async ({ room }) => {
    order.push(`first ${room.name}`)
    await new Promise((resolve) => setImmediate(resolve))
    if (attachFails) throw new Error('cannot subscribe')
  })
  events.before('room.loaded', async ({ room }) => { order.push(`second ${room.name}`) })
  const registry = new RoomRegistry(new MemoryStore(), {
    echo: true, awarenessInterval: 50, compactEvery: 500, roomGrace: 10_000, containment, events,
  }, createLogger('silent'))
  await assert.rejects(registry.get('r'), /cannot subscribe/)
  assert.deepEqual(order, ['first r'], 'the second waits for the first, which failed')
  assert.equal(registry.loadedCount, 0, 'nothing kept of the failed load')
  assert.deepEqual(told, ['unloaded r failed', 'failed r LOAD_FAILED'])
  attachFails = false
  const room = await registry.get('r')
  assert.equal(room.isDestroyed, false)
  assert.deepEqual(order, ['first r', 'first r', 'second r'])
  assert.deepEqual(told.slice(2), ['loaded r'])
  await registry.closeAll()
  assert.deepEqual(told.slice(3), ['unloaded r shutdown'])
})

test('no second callback mechanism in server/: an on... callback field is one of the few that are not notifications', async () => {
  // Not notifications of the server's life, so not events: a backup's per-call progress
  // (its caller's progress bar), a room's own presence part telling the room (which emits
  // awareness.local), and the upgrade handler the attach code hands to the HTTP server.
  const allowed = new Set(['backup-format.ts onRoom', 'backup-format.ts onUnreadable', 'presence.ts onLocalChange', 'room.ts onLocalChange', 'server.ts onUpgrade'])
  const found: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) await walk(path)
      else if (entry.name.endsWith('.ts')) {
        for (const m of (await readFile(path, 'utf8')).matchAll(/^\s+(?:readonly\s+)?(on[A-Z]\w*)\??:\s*\(/gm)) found.push(`${entry.name} ${m[1]}`)
      }
    }
  }
  await walk(new URL('../server', import.meta.url).pathname)
  assert.deepEqual(found.filter((f) => !allowed.has(f)), [], 'a callback field: make it an event of server/base/events.ts, subscribed in server.ts')
})
