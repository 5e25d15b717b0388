/** Dead peers: a connection that stops answering pings is closed (and its presence removed); a live one stays. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../server/index.js'
import { encodeAwareness, encodeAwarenessUpdate } from '../server/room/protocol.js'
import { connect, synced, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'

test('a peer that stops answering pings is dropped; one that answers stays', async (t) => {
  // Generous: a live peer whose pong is late because the loop was busy must not look dead.
  const pingInterval = 300
  const server = await startServer({ storage: 'memory', pingInterval })
  const live = await RawClient.open(`${server.url}/pings`)
  // ws answers pings itself unless told not to: this is a peer whose network went away.
  const dead = await RawClient.open(`${server.url}/pings`, { autoPong: false })
  const observer = connect(server.url, 'pings')
  t.after(async () => {
    live.close()
    dead.close()
    observer.destroy()
    await server.close()
  })
  await synced(observer)
  let livePings = 0
  let deadPings = 0
  live.ws.on('ping', () => livePings++)
  dead.ws.on('ping', () => deadPings++)
  dead.send(encodeAwareness(encodeAwarenessUpdate([{ clientID: 31337, clock: 1, state: { name: 'ghost' } }])))
  await waitFor(() => observer.provider.awareness.getStates().has(31337), { message: 'the dead peer\'s presence' })

  const started = Date.now()
  await dead.waitClosed(10 * pingInterval + 5000)
  const ms = Date.now() - started
  t.diagnostic(`dead peer dropped after ${ms} ms (${deadPings} unanswered pings, interval ${pingInterval} ms)`)
  assert.ok(deadPings >= 1, 'it was pinged')
  await waitFor(() => !observer.provider.awareness.getStates().has(31337), { message: 'its presence removed' })

  await waitFor(() => livePings >= 3, { timeout: 10_000, message: 'several pings to the live peer' })
  assert.equal(live.closeInfo, undefined, 'the live peer is still connected')
  assert.ok(observer.provider.wsconnected)
})

test('a live peer survives a loop stalled past the ping interval while its pong is unread', async (t) => {
  const pingInterval = 300
  const server = await startServer({ storage: 'memory', pingInterval })
  const live = await RawClient.open(`${server.url}/pings`)
  t.after(async () => {
    live.close()
    await server.close()
  })
  let pings = 0
  live.ws.on('ping', () => {
    pings++
    // ws has written the pong before this event: the loop now stalls before the server reads it.
    if (pings === 2) {
      const end = Date.now() + 2.5 * pingInterval
      while (Date.now() < end) { /* a busy loop, as on a loaded machine */ }
    }
  })
  await waitFor(() => pings >= 5 || live.closeInfo, { message: 'three more pings, or a close' })
  assert.equal(live.closeInfo, undefined, 'the live peer is still connected')
})

test('the ping interval is an option of coedit serve', async () => {
  const { parseServeArgs } = await import('../server/config.js')
  assert.equal(parseServeArgs(['--ping-interval', '2s'], {}).pingInterval, 2000)
  assert.equal(parseServeArgs([], { PING_INTERVAL: '500ms' }).pingInterval, 500)
  assert.equal(parseServeArgs([], {}).pingInterval, 30_000)
})
