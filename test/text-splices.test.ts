/**
 * The splices `POST /api/rooms/ROOM/text` makes: applied to the old text they give the new
 * one, exactly; they touch only what differs; they never cut a surrogate pair.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { applySplices, spliceInto, textSplices } from '../server/text-splices.js'
import { prng, testSeed } from './helpers/index.js'

const ALPHABET = ['a', 'b', 'c', ' ', '\n', 'é', '😀', '👍🏽', '中']

test('seeded random edits: the splices turn the old text into the new one, in a string and in a Y.Text', (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const pick = (): string => ALPHABET[Math.floor(random() * ALPHABET.length)]!
  for (let round = 0; round < 500; round++) {
    let before = ''
    for (let i = Math.floor(random() * 40); i > 0; i--) before += pick()
    const chars = Array.from(before)
    for (let e = Math.floor(random() * 5); e > 0; e--) {
      const at = Math.floor(random() * (chars.length + 1))
      if (random() < 0.5 && chars.length > 0) chars.splice(at, 1 + Math.floor(random() * 3))
      else chars.splice(at, 0, pick(), pick())
    }
    const after = chars.join('')
    const splices = textSplices(before, after)
    assert.equal(applySplices(before, splices), after, `round ${round}: ${JSON.stringify(before)} → ${JSON.stringify(after)}`)
    for (const s of splices) {
      // No splice starts or ends between the halves of a surrogate pair.
      for (const at of [s.index, s.index + s.remove]) {
        const code = before.charCodeAt(at)
        assert.ok(!(code >= 0xdc00 && code <= 0xdfff), `round ${round}: a splice cuts a pair at ${at}`)
      }
    }
    const doc = new Y.Doc()
    const text = doc.getText('t')
    text.insert(0, before)
    doc.transact(() => spliceInto(text, splices))
    assert.equal(text.toString(), after, `round ${round} in a Y.Text`)
  }
})

test('the splices touch only what differs: two distant changes are two small splices', () => {
  const middle = 'the middle stays as it is. '.repeat(200)
  const before = `Dear Ada,\n${middle}Regards, Bob`
  const after = `Dear Grace,\n${middle}Best, Bob`
  const splices = textSplices(before, after)
  assert.equal(splices.length, 2)
  assert.ok(splices.every((s) => s.remove + s.insert.length < 12), JSON.stringify(splices))
  assert.deepEqual(textSplices('same', 'same'), [])
  assert.deepEqual(textSplices('', 'new'), [{ index: 0, remove: 0, insert: 'new' }])
  assert.deepEqual(textSplices('old', ''), [{ index: 0, remove: 3, insert: '' }])
  // Emoji sharing a high surrogate: the splice covers the whole pair.
  assert.deepEqual(textSplices('a😀b', 'a😁b'), [{ index: 1, remove: 2, insert: '😁' }])
})

test('texts too different to diff cheaply are replaced in one splice, in bounded work', () => {
  const random = prng(7)
  const noise = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join('')
  const before = noise(200_000)
  const after = noise(200_000)
  const started = process.cpuUsage()
  const splices = textSplices(before, after)
  const cpuMs = (process.cpuUsage(started).user + process.cpuUsage(started).system) / 1000
  assert.equal(applySplices(before, splices), after)
  // Generous: the budget is a few tens of millions of steps (well under a second here).
  assert.ok(cpuMs < 20_000, `${cpuMs} ms of CPU`)
})
