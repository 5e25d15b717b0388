/** SIGTERM: clients are closed with 1001, everything received is stored, and the process exits 0. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { encodeSyncUpdate } from '../server/room/protocol.js'
import { connect, synced, tempDir } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { startChildServer, type ChildServer } from './helpers/child-server.js'

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} closes clients with 1001, stores what they sent, and exits 0`, async (t) => {
    const dir = await tempDir()
    let server: ChildServer = await startChildServer(['--data', dir.path, '--log-level', 'info'])
    t.after(async () => {
      await server.kill('SIGKILL')
      await dir.remove()
    })
    const writer = await RawClient.open(`${server.url}/bye`)
    const bystander = await RawClient.open(`${server.url}/elsewhere`)
    await writer.waitForMessage('sync-step1')
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    for (let i = 0; i < 300; i++) doc.getText('text').insert(i, String(i % 10))
    // All sent in one go and the signal right behind them: most are still in flight.
    for (const u of updates.slice(0, -1)) writer.send(encodeSyncUpdate(u))
    await new Promise<void>((resolve) => writer.ws.send(encodeSyncUpdate(updates.at(-1)!), () => resolve()))
    server.child.kill(signal)
    const [closedW, closedB] = await Promise.all([writer.waitClosed(20_000), bystander.waitClosed(20_000)])
    assert.equal(closedW.code, 1001)
    assert.equal(closedB.code, 1001)
    const exit = await server.exited
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status; stderr: ${server.stderr()}`)
    assert.ok(server.logs.some((l) => l.event === 'stopped'), 'logged the stop')

    server = await startChildServer(['--data', dir.path, '--log-level', 'info'])
    const fresh = connect(server.url, 'bye')
    t.after(() => fresh.destroy())
    await synced(fresh, 20_000)
    assert.equal(fresh.text.toString(), doc.getText('text').toString(), 'every update sent before the signal was stored')
  })
}
