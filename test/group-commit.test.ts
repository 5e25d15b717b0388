/**
 * GroupCommit: batches are numbered one at a time in call order, at most `concurrency` are
 * written at once (LevelDB: 1), the next batch is handed over before the last one's callers
 * run, and an exclusive write waits for every batch before it and holds back every one after it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GroupCommit, type Append } from '../server/persistence/group-commit.js'
import { gate } from './helpers/controlled-store.js'
import { waitFor } from './helpers/index.js'

const u = new Uint8Array([0])

test('up to `concurrency` batches are written at once, numbered in call order; the rest wait their turn', async () => {
  const writes: Array<{ rooms: string[]; release: () => void }> = []
  let next = 1
  let inFlight = 0
  let most = 0
  const commits = new GroupCommit(async (batch: readonly Append[], numbered) => {
    const seqs = batch.map(() => next++)
    numbered()
    inFlight++
    most = Math.max(most, inFlight)
    const done = gate()
    writes.push({ rooms: batch.map((a) => a.room), release: () => done.open() })
    await done.promise
    inFlight--
    return seqs
  }, 2)
  const a = commits.add('a', [u])
  await waitFor(() => writes.length === 1, { message: 'first batch written' })
  const b = commits.add('b', [u])
  await waitFor(() => writes.length === 2, { message: 'second batch handed over while the first is written' })
  const c = commits.add('c', [u])
  const d = commits.add('d', [u])
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(writes.length, 2, 'a third waits for a slot')
  writes[1]!.release()
  assert.equal(await b, 2)
  await waitFor(() => writes.length === 3, { message: 'c and d go together once a slot is free' })
  assert.deepEqual(writes[2]!.rooms, ['c', 'd'])
  writes[0]!.release()
  writes[2]!.release()
  assert.deepEqual(await Promise.all([a, c, d]), [1, 3, 4])
  assert.equal(most, 2)
  await commits.drained()
})

test('an exclusive write runs alone: after the batches in flight, before the appends called after it', async () => {
  const order: string[] = []
  const gates = new Map<string, () => void>()
  const commits = new GroupCommit(async (batch: readonly Append[], numbered) => {
    numbered()
    const done = gate()
    const name = batch.map((x) => x.room).join('+')
    gates.set(name, () => done.open())
    order.push(`start ${name}`)
    await done.promise
    order.push(`end ${name}`)
    return batch.map(() => 0)
  }, 3)
  const a = commits.add('a', [u])
  await waitFor(() => gates.has('a'), { message: 'a written' })
  const ex = commits.exclusive(async () => { order.push('exclusive') })
  const b = commits.add('b', [u])
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(order, ['start a'], 'neither the exclusive nor b overtakes a')
  gates.get('a')!()
  await ex
  await waitFor(() => gates.has('b'), { message: 'b after the exclusive' })
  gates.get('b')!()
  await Promise.all([a, b])
  assert.deepEqual(order, ['start a', 'end a', 'exclusive', 'start b', 'end b'])
})

test('a batch that is never numbered by its writer (it threw first) frees the next one when it settles', async () => {
  let calls = 0
  const commits = new GroupCommit(async (batch: readonly Append[]) => {
    calls++
    if (calls === 1) throw new Error('disk gone')
    return batch.map(() => calls)
  }, 2)
  await assert.rejects(commits.add('a', [u]), { code: 'STORE_WRITE_FAILED' })
  assert.equal(await commits.add('b', [u]), 2)
})

test('one at a time (the default): the batch that queued up during a write is handed over before that write\'s callers are told', async () => {
  const writes: Array<{ rooms: string[]; release: () => void }> = []
  const commits = new GroupCommit(async (batch: readonly Append[], numbered) => {
    numbered()
    const done = gate()
    writes.push({ rooms: batch.map((a) => a.room), release: () => done.open() })
    await done.promise
    return batch.map(() => writes.length)
  })
  const a = commits.add('a', [u])
  await waitFor(() => writes.length === 1, { message: 'a written' })
  const b = commits.add('b', [u])
  const c = commits.add('c', [u])
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(writes.length, 1, 'b and c wait for a')
  let writingWhenTold = 0
  const told = a.then(() => { writingWhenTold = writes.length })
  writes[0]!.release()
  await told
  assert.equal(writingWhenTold, 2, 'b and c were handed over before a\'s caller ran')
  assert.deepEqual(writes[1]!.rooms, ['b', 'c'])
  writes[1]!.release()
  await Promise.all([b, c])
  await commits.drained()
})
