/**
 * A seeded random race of room deletes against everything else that touches the room:
 * deletes with and without a tombstone (some while a write or a load is held at the
 * store's gate, test/helpers/controlled-store.ts), stock providers joining and leaving,
 * their edits, `documents.transact` and document-API posts, some awaited and some left
 * running into the next steps. Then the invariants, as the room's users would see them:
 *
 *  - nothing acknowledged before the last delete was asked for comes back: not to a fresh
 *    client, not through `documents.get` or a transact's copy, not after a restart;
 *  - nothing acknowledged after it is lost (a transact or post started after the delete
 *    resolved and that resolved: in the room, also after the restart);
 *  - every provider still connected converges on the server's document;
 *  - no crash (the server answers throughout, closes cleanly and starts again).
 *
 * Every write inserts a unique token at the start or the end of the text, so tokens are
 * never split and "is it there" is a substring check. Prints its seed; replay with
 * SEED=<n>. DELETE_RACE_STEPS=<n> runs longer (default 40 steps, a few seconds).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'
import { connect, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'

const STEPS = Number(process.env.DELETE_RACE_STEPS ?? 40)
const ROOM = 'race'

/** A write and when it happened on the test's logical clock. */
interface Write {
  token: string
  kind: 'edit' | 'transact' | 'post'
  started: number
  /** When it was acknowledged (an edit: when typed); undefined while running or if refused. */
  acked?: number
}

interface Active {
  client: Client
  joined: number
  stopped: boolean
}

test('delete race: random deletes, joins, leaves, edits, transacts and posts keep the invariants', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay: SEED=${seed} DELETE_RACE_STEPS=${STEPS})`)
  const rand = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const dir = await tempDir()
  const inner = await LevelStore.open(dir.path)
  const store = new ControlledStore(inner)
  let server: CoeditServer = await startServer({ storage: store, roomGrace: 30 })
  const clients: Active[] = []
  t.after(async () => {
    for (const c of clients) c.client.destroy()
    await server.close().catch(() => {})
    await inner.close()
    await dir.remove()
  })

  let clock = 0
  const tick = (): number => ++clock
  let tokens = 0
  const writes: Write[] = []
  const deletes: Array<{ called: number; resolved: number; tombstone: boolean }> = []
  const running: Array<Promise<unknown>> = []
  const newToken = (kind: Write['kind']): Write => {
    const w: Write = { token: `<${kind[0]}${++tokens}>`, kind, started: tick() }
    writes.push(w)
    return w
  }
  const atEnd = (): boolean => rand() < 0.5

  const join = (): void => {
    const client = connect(server.url, ROOM)
    const active: Active = { client, joined: tick(), stopped: false }
    // 4410 stops a stock provider for good: it held the deleted room and is done.
    client.provider.on('closed', () => { active.stopped = true })
    clients.push(active)
  }
  const leave = (): void => {
    const live = clients.filter((c) => !c.stopped)
    if (live.length === 0) return
    const gone = pick(live)
    gone.client.destroy()
    gone.stopped = true
  }
  const edit = (): void => {
    const ready = clients.filter((c) => !c.stopped && c.client.provider.synced)
    if (ready.length === 0) return
    const { client } = pick(ready)
    const w = newToken('edit')
    client.text.insert(atEnd() ? client.text.length : 0, w.token)
    w.acked = w.started
  }
  const transact = (): Promise<void> => {
    const w = newToken('transact')
    const end = atEnd()
    return server.documents.transact(ROOM, (doc) => {
      const text = doc.getText('text')
      text.insert(end ? text.length : 0, w.token)
    }).then(() => { w.acked = tick() }, (err: { code?: string }) => {
      // Caught by a delete: refused, nothing stored. Anything else is a failure (DELETED_CONTENT
      // too: a transact's copy is of the room it applies to, so it never builds on old content).
      assert.equal(err.code, 'ROOM_DELETED', `transact ${w.token}: ${String(err)} (seed ${seed})`)
    })
  }
  const post = async (): Promise<void> => {
    const w = newToken('post')
    const doc = new Y.Doc()
    doc.getText('text').insert(0, w.token)
    const res = await fetch(`${server.httpUrl}/api/rooms/${ROOM}/update`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(doc) })
    const body = await res.text()
    if (res.status === 200) w.acked = tick()
    // A fresh document's update touches nothing old: only a delete catching it may refuse it.
    else assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'ROOM_DELETED', `post ${w.token}: ${res.status} ${body} (seed ${seed})`)
  }
  const remove = async (held: 'none' | 'append' | 'load'): Promise<void> => {
    const tombstone = rand() < 0.5
    const record = { called: 0, resolved: 0, tombstone }
    if (held === 'none') {
      record.called = tick()
      await server.rooms.delete(ROOM, { tombstone })
      record.resolved = tick()
      deletes.push(record)
      return
    }
    // A write (or a load) held at the store while the delete runs: a deterministic interleaving.
    const g = gate()
    const before = held === 'append' ? store.calls.append : store.calls.load
    const hold = (room: string): Promise<void> | undefined => (room === ROOM ? g.promise : undefined)
    if (held === 'append') store.beforeAppend = hold
    else store.beforeLoad = hold
    // The held write is this transact's; or its load, when the room is not in memory (else nothing is held).
    const caught = transact()
    const reached = await waitFor(() => (held === 'append' ? store.calls.append : store.calls.load) > before, { timeout: 300, message: 'held' }).then(() => true, () => false)
    record.called = tick()
    const deleting = server.rooms.delete(ROOM, { tombstone })
    if (held === 'append') store.beforeAppend = undefined
    else store.beforeLoad = undefined
    // A held load is let go before the delete can finish (the delete waits for it); a held append after.
    if (held === 'load' || !reached) g.open()
    await deleting
    record.resolved = tick()
    deletes.push(record)
    g.open()
    await caught
  }

  for (let step = 0; step < STEPS; step++) {
    const r = rand()
    if (r < 0.15) join()
    else if (r < 0.22) leave()
    else if (r < 0.45) edit()
    else if (r < 0.62) {
      const p = transact()
      if (rand() < 0.5) await p
      else running.push(p)
    } else if (r < 0.75) {
      const p = post()
      if (rand() < 0.5) await p
      else running.push(p)
    } else if (r < 0.85) await remove('none')
    else if (r < 0.93) await remove('append')
    else await remove('load')
    // Let the sockets move a little between steps, sometimes not at all.
    if (rand() < 0.5) await new Promise((resolve) => setImmediate(resolve))
  }
  // One last delete, so there always is one, then writes after it.
  await remove(pick(['none', 'append', 'load'] as const))
  await Promise.all(running)
  running.length = 0
  join()
  join()
  for (let i = 0; i < 6; i++) {
    const r = rand()
    if (r < 0.4) await transact()
    else if (r < 0.7) await post()
    else {
      const fresh = clients.filter((c) => !c.stopped && c.joined > deletes.at(-1)!.resolved)
      await Promise.all(fresh.map((c) => synced(c.client)))
      edit()
    }
  }

  const last = deletes.at(-1)!
  const old = writes.filter((w) => w.acked !== undefined && w.acked < last.called).map((w) => w.token)
  const kept = writes.filter((w) => w.kind !== 'edit' && w.acked !== undefined && w.started > last.resolved).map((w) => w.token)
  t.diagnostic(`${writes.length} writes, ${deletes.length} deletes (last: tombstone ${last.tombstone}), ${old.length} before the last delete, ${kept.length} acknowledged after it`)
  const check = (what: string, text: string): void => {
    for (const token of old) assert.ok(!text.includes(token), `${what}: ${token}, acknowledged before the last delete, came back (seed ${seed})`)
    for (const token of kept) assert.ok(text.includes(token), `${what}: ${token}, acknowledged after the last delete, is lost (seed ${seed})`)
  }

  // Every provider still connected converges on the server's document.
  const serverText = async (): Promise<string> => (await server.documents.get(ROOM)).getText('text').toString()
  const live = clients.filter((c) => !c.stopped)
  await waitFor(async () => {
    const now = await serverText()
    return live.every((c) => c.client.provider.synced && c.client.text.toString() === now)
  }, { timeout: 15_000, message: `every provider converges (seed ${seed})` })
  check('documents.get', await serverText())
  const fresh = connect(server.url, ROOM)
  clients.push({ client: fresh, joined: tick(), stopped: false })
  await synced(fresh)
  check('a fresh client', fresh.text.toString())
  let inTransact = ''
  await server.documents.transact(ROOM, (doc) => { inTransact = doc.getText('text').toString() })
  check('a transact\'s copy', inTransact)
  // The edits of connected providers are in the server's document too (they converged on it).
  const expected = await serverText()

  // A restart over the same store: the same document, nothing old.
  for (const c of clients) c.client.destroy()
  clients.length = 0
  await server.close()
  server = await startServer({ storage: store, roomGrace: 30 })
  const restarted = await serverText()
  check('after a restart', restarted)
  assert.equal(restarted, expected, `the restarted server holds what was served (seed ${seed})`)
})
