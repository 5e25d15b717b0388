/**
 * The editor's pure text functions (web/src/diff.ts), checked against Yjs itself:
 * a splice turns the old text into the new one and is minimal; moving an index through
 * a delta agrees with Y.RelativePosition. No browser needed.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import * as Y from 'yjs'
import { applyDelta, computeSplice, transformIndex, type DeltaOp } from '../web/src/diff.js'

const text = fc.string({ unit: fc.constantFrom('a', 'b', '\n', 'é', '😀'), maxLength: 40 })

const longest = (a: string, b: string, fromEnd: boolean): number => {
  let n = 0
  const max = Math.min(a.length, b.length)
  while (n < max && (fromEnd ? a[a.length - 1 - n] === b[b.length - 1 - n] : a[n] === b[n])) n++
  return n
}

test('computeSplice turns the old text into the new, touching only what changed', () => {
  const plain = fc.string({ unit: fc.constantFrom('a', 'b', '\n', 'é'), maxLength: 40 })
  fc.assert(fc.property(plain, plain, fc.nat(), (before, after, c) => {
    const splice = computeSplice(before, after, c % (after.length + 1))
    if (before === after) return assert.equal(splice, null)
    assert.ok(splice)
    assert.equal(before.slice(0, splice.index) + splice.insert + before.slice(splice.index + splice.remove), after)
    const kept = Math.min(longest(before, after, false) + longest(before, after, true), before.length, after.length)
    assert.equal(before.length - splice.remove, kept, 'keeps as much as any single splice could')
  }))
})

test('computeSplice is exact with surrogate pairs and never cuts one', () => {
  fc.assert(fc.property(text, text, fc.nat(), (before, after, c) => {
    const splice = computeSplice(before, after, c % (after.length + 1))
    if (!splice) return
    assert.equal(before.slice(0, splice.index) + splice.insert + before.slice(splice.index + splice.remove), after)
    const isLow = (s: string, i: number): boolean => i > 0 && i < s.length && /[\udc00-\udfff]/.test(s[i]!)
    assert.ok(!isLow(before, splice.index) && !isLow(before, splice.index + splice.remove), 'no surrogate pair is split')
  }))
})

test('computeSplice uses the caret to place an ambiguous insert', () => {
  assert.deepEqual(computeSplice('aa', 'aaa', 1), { index: 0, remove: 0, insert: 'a' })
  assert.deepEqual(computeSplice('aa', 'aaa', 2), { index: 1, remove: 0, insert: 'a' })
  assert.deepEqual(computeSplice('aa', 'aaa', 3), { index: 2, remove: 0, insert: 'a' })
  assert.deepEqual(computeSplice('abc', 'ac', 1), { index: 1, remove: 1, insert: '' })
  // Typing over a selection.
  assert.deepEqual(computeSplice('hello world', 'hello there', 11), { index: 6, remove: 5, insert: 'there' })
})

test('computeSplice never splits a surrogate pair', () => {
  // 😀 and 😁 share their high surrogate.
  const splice = computeSplice('x😀y', 'x😁y', 3)
  assert.deepEqual(splice, { index: 1, remove: 2, insert: '😁' })
})

/** `s` as a String object that counts the character reads made through it. */
function counting(s: string, reads: { chars: number }): string {
  const boxed = new String(s) as String & { charCodeAt(i: number): number }
  boxed.charCodeAt = (i: number): number => {
    reads.chars++
    return s.charCodeAt(i)
  }
  // computeSplice only uses length, slice and charCodeAt, which a String object has too.
  return boxed as unknown as string
}

test('computeSplice does not walk a 1 MB text character by character', (t) => {
  const big = 'lorem ipsum dolor sit amet\n'.repeat(40_000)
  const mid = big.length >> 1
  const after = big.slice(0, mid) + 'X' + big.slice(mid)
  const reads = { chars: 0 }
  const started = performance.now()
  assert.deepEqual(computeSplice(counting(big, reads), counting(after, reads), mid + 1), { index: mid, remove: 0, insert: 'X' })
  t.diagnostic(`one splice of a 1 MB text: ${(performance.now() - started).toFixed(1)} ms, ${reads.chars} characters read one by one`)
  // Compared in chunks, then at most a chunk's worth of single characters at each end;
  // a character-by-character walk would read two million.
  assert.ok(reads.chars < 10_000, `${reads.chars} characters read one by one`)
})

test('transformIndex and applyDelta agree with Yjs', () => {
  const edit = fc.record({ at: fc.nat(), remove: fc.nat({ max: 4 }), insert: fc.string({ unit: fc.constantFrom('x', 'y'), maxLength: 3 }) })
  // Plain characters: these edits are random indices and Yjs mends a surrogate pair they would cut.
  const plain = fc.string({ unit: fc.constantFrom('a', 'b', '\n'), maxLength: 30 })
  fc.assert(fc.property(plain, fc.array(edit, { maxLength: 4 }), fc.nat(), (initial, edits, i) => {
    const doc = new Y.Doc()
    const ytext = doc.getText('text')
    ytext.insert(0, initial)
    const before = ytext.toString()
    const index = i % (before.length + 1)
    // A relative position with assoc -1 sticks to the character before it, as transformIndex does by default.
    const rel = Y.createRelativePositionFromTypeIndex(ytext, index, -1)
    let delta: DeltaOp[] = []
    ytext.observe((e) => { delta = e.delta as DeltaOp[] })
    doc.transact(() => {
      for (const e of edits) {
        const at = e.at % (ytext.length + 1)
        ytext.delete(at, Math.min(e.remove, ytext.length - at))
        ytext.insert(at, e.insert)
      }
    })
    assert.equal(applyDelta(before, delta), ytext.toString())
    const abs = Y.createAbsolutePositionFromRelativePosition(rel, doc)
    assert.ok(abs)
    assert.equal(transformIndex(index, delta), abs.index)
    doc.destroy()
  }), { numRuns: 300 })
})
