/**
 * The history panel's "what changed since" (web/src/changes.ts), without a browser: the
 * marked text reads back as both texts, and a change too large to diff is said, not tried.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { changesSince, textNow, textThen, type Changes } from '../web/src/changes.js'
import { prng, testSeed } from './helpers/index.js'

function segmentsOf(c: Changes) {
  assert.ok(c.ok, 'diffed')
  return c.segments
}

test('insert, delete and replace are marked, and the marks read back as both texts', () => {
  const cases: Array<[string, string, Array<[string, string]>]> = [
    ['version one.', 'version one. then damage', [['same', 'version one.'], ['added', ' then damage']]],
    ['version one. then damage', 'one. then damage', [['gone', 'version '], ['same', 'one. then damage']]],
    ['the cat sat', 'the dog sat', [['same', 'the '], ['gone', 'cat'], ['added', 'dog'], ['same', ' sat']]],
    ['same', 'same', [['same', 'same']]],
    ['', 'new', [['added', 'new']]],
    ['old', '', [['gone', 'old']]],
  ]
  for (const [then, now, expected] of cases) {
    const segments = segmentsOf(changesSince(then, now))
    assert.deepEqual(segments.map((s) => [s.kind, s.text]), expected, `${then} → ${now}`)
    assert.equal(textThen(segments), then)
    assert.equal(textNow(segments), now)
  }
})

test('seeded random edits (emoji included): the marks always read back as both texts, never splitting a surrogate pair', () => {
  const seed = testSeed()
  console.log(`history changes seed: ${seed} (SEED=${seed} replays)`)
  const random = prng(seed)
  const alphabet = ['a', 'b', ' ', '\n', 'é', '😀', '👍🏽', 'word ']
  const pick = (n: number): string => Array.from({ length: n }, () => alphabet[Math.floor(random() * alphabet.length)]!).join('')
  for (let i = 0; i < 300; i++) {
    const then = pick(Math.floor(random() * 40))
    let now = then
    for (let k = Math.floor(random() * 4); k > 0; k--) {
      const at = Math.floor(random() * (now.length + 1))
      const cut = Math.floor(random() * 5)
      now = now.slice(0, at) + (random() < 0.6 ? pick(1 + Math.floor(random() * 4)) : '') + now.slice(at + cut)
    }
    // A random cut may split a pair in `now` itself; the check is about the marks of well-formed texts.
    if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(now)) continue
    const segments = segmentsOf(changesSince(then, now))
    const context = `seed ${seed}, case ${i}: ${JSON.stringify(then)} → ${JSON.stringify(now)}`
    assert.equal(textThen(segments), then, context)
    assert.equal(textNow(segments), now, context)
    for (const s of segments) assert.doesNotMatch(s.text, /^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/, `${context}: a mark splits a surrogate pair`)
  }
})

test('a large document with a small change is diffed (the common start and end cost no diff); a large change is refused with its size', () => {
  const line = 'The quick brown fox jumps over the lazy dog. '
  const big = line.repeat(Math.ceil(1024 * 1024 / line.length))
  const edited = big.slice(0, 500_000) + 'NEW ' + big.slice(500_000)
  const segments = segmentsOf(changesSince(big, edited))
  assert.deepEqual(segments.filter((s) => s.kind !== 'same').map((s) => s.text), ['NEW '])
  assert.equal(textThen(segments), big)

  const rewritten = big.slice(0, 1000) + 'x'.repeat(60_000) + big.slice(200_000)
  const refused = changesSince(big, rewritten)
  assert.equal(refused.ok, false)
  assert.equal(!refused.ok && refused.changed, 199_000 + 60_000)
  // Within the size bound but past the time bound: refused too, not waited for.
  const random = prng(1)
  const words = (): string => Array.from({ length: 8000 }, () => (random() < 0.5 ? 'a ' : 'b ')).join('')
  const slow = changesSince(`<${words()}>`, `[${words()}]`, { maxChars: 100_000, timeout: 1 })
  assert.equal(slow.ok, false)
})
