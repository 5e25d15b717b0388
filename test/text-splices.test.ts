/**
 * The splices `POST /api/rooms/ROOM/text` makes: applied to the old text they give the new
 * one, exactly; they touch only what differs; they never cut a surrogate pair.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { applySplices, spliceInto, textSplices } from '../server/operator/text-splices.js'
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

test('seeded random edits of long texts (diffed by line, then by character) come out exact', (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const pick = (): string => ALPHABET[Math.floor(random() * ALPHABET.length)]!
  for (let round = 0; round < 20; round++) {
    const chars = Array.from({ length: 15_000 }, pick)
    const before = chars.join('')
    for (let e = 5 + Math.floor(random() * 25); e > 0; e--) {
      const at = Math.floor(random() * (chars.length + 1))
      if (random() < 0.5) chars.splice(at, 1 + Math.floor(random() * 20))
      else chars.splice(at, 0, ...Array.from({ length: 1 + Math.floor(random() * 20) }, pick))
    }
    const after = chars.join('')
    const splices = textSplices(before, after)
    assert.equal(applySplices(before, splices), after, `round ${round}`)
    for (const s of splices) {
      for (const at of [s.index, s.index + s.remove]) {
        const code = before.charCodeAt(at)
        assert.ok(!(code >= 0xdc00 && code <= 0xdfff), `round ${round}: a splice cuts a pair at ${at}`)
      }
    }
    assert.ok(splices.length > 1, `round ${round}: scattered edits are not one splice`)
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

test('a long document with three scattered changes gets three small splices (by line, then by character)', () => {
  const doc = Array.from({ length: 5000 }, (_, i) => `Line ${i}: the quick brown fox jumps over the lazy dog.`).join('\n')
  const edited = doc.replace('Line 10:', 'Line ten:').replace('Line 2500: the', 'Line 2500: THE').replace('Line 4990: the quick', 'Line 4990: a slow')
  const splices = textSplices(doc, edited)
  assert.equal(applySplices(doc, splices), edited)
  assert.deepEqual(splices.map((s) => [s.remove, s.insert]), [[2, 'ten'], [3, 'THE'], [9, 'a slow']])
})

test('texts too different to diff cheaply are replaced in coarser splices, in bounded work', () => {
  const random = prng(7)
  const noise = (n: number, newlines: number): string => Array.from({ length: n }, () => (random() < newlines ? '\n' : String.fromCharCode(97 + Math.floor(random() * 26)))).join('')
  for (const [n, newlines] of [[1000, 0], [20_000, 0.03], [200_000, 0.03], [2_000_000, 0.5]] as const) {
    const before = noise(n, newlines)
    const after = noise(n, newlines)
    const started = process.cpuUsage()
    const splices = textSplices(before, after)
    const used = process.cpuUsage(started)
    const cpuMs = (used.user + used.system) / 1000
    assert.equal(applySplices(before, splices), after)
    // The budget is 100 ms of diffing plus linear scans (well under that here); the bound is generous.
    assert.ok(cpuMs < 5000, `${n} characters: ${cpuMs} ms of CPU`)
  }
})
