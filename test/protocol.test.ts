/** The wire codec: every encoder round-trips through its decoder; malformed or out-of-bounds input is a coded ProtocolError. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import {
  ProtocolError, decodeAwarenessEntries, decodeAwarenessUpdate, decodeClientMessage, isAwarenessRemoval, parseAwarenessState, readAwarenessUpdate, decodeServerMessage, encodeAuthDenied,
  encodeAwareness, encodeAwarenessUpdate, encodeCoeditPersisted, encodeQueryAwareness, encodeSyncStep1,
  encodeSyncStep2, encodeSyncUpdate, MESSAGE_SYNC,
} from '../server/room/protocol.js'
import { jsonNestingDepth } from '../server/room/json-depth.js'
import { CoeditError, isErrorCode } from '../server/errors.js'

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b)

function assertProtocolError(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => err instanceof ProtocolError && err.code === code, `expected ProtocolError ${code}`)
}

test('sync messages round-trip', () => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'hello')
  const sv = Y.encodeStateVector(doc)
  const update = Y.encodeStateAsUpdate(doc)
  assert.deepEqual(decodeClientMessage(encodeSyncStep1(sv)), { type: 'sync-step1', stateVector: sv })
  assert.deepEqual(decodeClientMessage(encodeSyncStep2(update)), { type: 'sync-step2', update })
  assert.deepEqual(decodeClientMessage(encodeSyncUpdate(update)), { type: 'sync-update', update })
  assert.deepEqual(decodeClientMessage(encodeQueryAwareness()), { type: 'query-awareness' })
  const aw = encodeAwarenessUpdate([{ clientID: 7, clock: 3, state: { user: { name: 'Ada' } } }])
  assert.deepEqual(decodeClientMessage(encodeAwareness(aw)), { type: 'awareness', update: aw })
})

test('server messages round-trip, extension ones included', () => {
  assert.deepEqual(decodeServerMessage(encodeAuthDenied('no token')), { type: 'auth-denied', reason: 'no token' })
  assert.deepEqual(decodeServerMessage(encodeCoeditPersisted(0)), { type: 'coedit-persisted', count: 0 })
  assert.deepEqual(decodeServerMessage(encodeCoeditPersisted(2 ** 40)), { type: 'coedit-persisted', count: 2 ** 40 })
  assert.deepEqual(decodeServerMessage(encodeSyncStep1(bytes(0))), { type: 'sync-step1', stateVector: bytes(0) })
})

test('our bytes equal the bytes y-protocols writes', () => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'x')
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  syncProtocol.writeSyncStep1(e, doc)
  assert.deepEqual(encodeSyncStep1(Y.encodeStateVector(doc)), encoding.toUint8Array(e))

  const u = encoding.createEncoder()
  encoding.writeVarUint(u, MESSAGE_SYNC)
  syncProtocol.writeUpdate(u, Y.encodeStateAsUpdate(doc))
  assert.deepEqual(encodeSyncUpdate(Y.encodeStateAsUpdate(doc)), encoding.toUint8Array(u))

  const awareness = new awarenessProtocol.Awareness(doc)
  awareness.setLocalState({ name: 'Ada', n: 1 })
  const theirs = awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID])
  const decoded = decodeAwarenessUpdate(theirs)
  assert.deepEqual(decoded, [{ clientID: doc.clientID, clock: 1, state: { name: 'Ada', n: 1 } }])
  assert.deepEqual(encodeAwarenessUpdate(decoded), theirs)
  awareness.destroy()
})

test('awareness updates round-trip, removals (null) included', () => {
  const entries = [
    { clientID: 1, clock: 0, state: null },
    { clientID: 2 ** 32 - 1, clock: 2 ** 31, state: { cursor: { anchor: 3 }, name: 'ü' } },
  ]
  assert.deepEqual(decodeAwarenessUpdate(encodeAwarenessUpdate(entries)), entries)
  assert.deepEqual(decodeAwarenessUpdate(encodeAwarenessUpdate([])), [])
})

test('malformed client messages are coded errors', () => {
  assertProtocolError(() => decodeClientMessage(bytes()), 'TRUNCATED')
  assertProtocolError(() => decodeClientMessage(bytes(0x80)), 'TRUNCATED')
  assertProtocolError(() => decodeClientMessage(bytes(0x80, 0x80, 0x80)), 'TRUNCATED')
  assertProtocolError(() => decodeClientMessage(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), 'VARINT_TOO_LARGE')
  assertProtocolError(() => decodeClientMessage(bytes(0)), 'TRUNCATED')
  assertProtocolError(() => decodeClientMessage(bytes(0, 7, 0)), 'UNKNOWN_SYNC_TYPE')
  assertProtocolError(() => decodeClientMessage(bytes(0, 2, 5, 1, 2)), 'TRUNCATED')
  assertProtocolError(() => decodeClientMessage(bytes(0, 2, 0x80)), 'TRUNCATED')
  assertProtocolError(() => decodeClientMessage(bytes(0, 2, 1, 0, 9)), 'TRAILING_BYTES')
  assertProtocolError(() => decodeClientMessage(bytes(3, 0)), 'TRAILING_BYTES')
  assertProtocolError(() => decodeClientMessage(bytes(9)), 'UNKNOWN_MESSAGE_TYPE')
  // The server never accepts server-only messages from a client.
  assertProtocolError(() => decodeClientMessage(encodeAuthDenied('x')), 'UNKNOWN_MESSAGE_TYPE')
  assertProtocolError(() => decodeClientMessage(encodeCoeditPersisted(1)), 'UNKNOWN_MESSAGE_TYPE')
})

test('malformed awareness payloads are coded errors', () => {
  const enc = (write: (e: encoding.Encoder) => void): Uint8Array => {
    const e = encoding.createEncoder()
    write(e)
    return encoding.toUint8Array(e)
  }
  const badJson = enc((e) => {
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, 5)
    encoding.writeVarUint(e, 1)
    encoding.writeVarString(e, '{not json')
  })
  assertProtocolError(() => decodeAwarenessUpdate(badJson), 'BAD_AWARENESS_JSON')
  const badUtf8 = enc((e) => {
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, 5)
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint8Array(e, bytes(0xff, 0xfe))
  })
  assertProtocolError(() => decodeAwarenessUpdate(badUtf8), 'BAD_UTF8')
  assertProtocolError(() => decodeAwarenessUpdate(bytes(100, 1, 1)), 'TRUNCATED')
  assertProtocolError(() => decodeAwarenessUpdate(bytes(1, 1, 1)), 'TRUNCATED')
  assertProtocolError(() => decodeAwarenessUpdate(bytes(0, 0)), 'TRAILING_BYTES')
})

test('random garbage never throws anything but a ProtocolError', () => {
  let seed = 12345
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff)
  for (let i = 0; i < 5000; i++) {
    const buf = new Uint8Array(next() % 24)
    for (let j = 0; j < buf.length; j++) buf[j] = next() & 0xff
    // Bias towards valid prefixes so the inner decoders are reached.
    if (buf.length > 0 && i % 2 === 0) buf[0] = next() % 4
    for (const decode of [decodeClientMessage, decodeServerMessage, decodeAwarenessUpdate]) {
      try {
        decode(buf)
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `unexpected ${String(err)} for ${Buffer.from(buf).toString('hex')}`)
      }
    }
  }
})

test('JSON nesting depth: a linear scan that ignores brackets in strings and stops early', () => {
  const depth = (text: string, stopAbove?: number): number => jsonNestingDepth(new TextEncoder().encode(text), stopAbove)
  assert.equal(depth('1'), 0)
  assert.equal(depth('"[{"'), 0)
  assert.equal(depth('{}'), 1)
  assert.equal(depth('{"a":[1]}'), 2)
  assert.equal(depth('[[],[[]],[]]'), 3)
  assert.equal(depth('{"a":"[[[{","b":"\\"[[","c":["\\\\",[2]]}'), 3)
  assert.equal(depth('["ü€𝄞",{"x":"]]]"}]'), 2)
  const deep = '['.repeat(6000) + ']'.repeat(6000)
  assert.equal(depth(deep), 6000)
  assert.equal(depth(deep, 64), 65, 'stops at the first depth over the limit')
  // Agrees with the parsed value's depth on seeded random JSON.
  let seed = 4242
  const next = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n
  const value = (d: number): unknown => {
    const k = d > 12 ? 0 : next(5)
    if (k === 0) return ['x', '[', '{"', '\\"]', 1.5e20, null, true][next(7)]
    if (k < 3) return Array.from({ length: next(4) }, () => value(d + 1))
    return Object.fromEntries(Array.from({ length: next(4) }, (_, i) => [`k${i}[`, value(d + 1)]))
  }
  const measured = (v: unknown): number => Array.isArray(v) ? 1 + Math.max(0, ...v.map(measured))
    : v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(measured)) : 0
  for (let i = 0; i < 500; i++) {
    const v = value(0)
    assert.equal(depth(JSON.stringify(v)), measured(v), JSON.stringify(v))
  }
})

test('awareness limits: size (as sent and re-encoded) and depth are coded errors; sizes are what the entries weigh', () => {
  const limits = { maxStateBytes: 100, maxDepth: 3 }
  const one = (json: string): Uint8Array => {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, 300)
    encoding.writeVarUint(e, 2)
    encoding.writeVarString(e, json)
    return encoding.toUint8Array(e)
  }
  const atLimit = JSON.stringify({ s: 'x'.repeat(92) })
  assert.equal(atLimit.length, 100)
  const [entry] = decodeAwarenessEntries(one(atLimit), limits)
  // The whole update but its leading count: client ID 300 (2 bytes), clock, length, JSON.
  assert.equal(entry!.size, one(atLimit).length - 1)
  assertProtocolError(() => decodeAwarenessEntries(one(JSON.stringify({ s: 'x'.repeat(93) })), limits), 'AWARENESS_STATE_TOO_LARGE')
  // 40 bytes as sent, 107 re-encoded.
  assertProtocolError(() => decodeAwarenessEntries(one('[1e20,1e20,1e20,1e20,1e20,1e20,1e20,1e20]'), limits), 'AWARENESS_STATE_TOO_LARGE')
  assert.equal(decodeAwarenessEntries(one('[[[1]]]'), limits).length, 1)
  assertProtocolError(() => decodeAwarenessEntries(one('[[[[1]]]]'), limits), 'AWARENESS_TOO_DEEP')
  assertProtocolError(() => decodeAwarenessEntries(one('['.repeat(6000) + ']'.repeat(6000)), { ...limits, maxStateBytes: 65536 }), 'AWARENESS_TOO_DEEP')
  // Unclosed or unbalanced: too deep, or not JSON; never anything else.
  assertProtocolError(() => decodeAwarenessEntries(one('[[[['), limits), 'AWARENESS_TOO_DEEP')
  assertProtocolError(() => decodeAwarenessEntries(one(']]]]['), limits), 'BAD_AWARENESS_JSON')
  // A multi-byte state counts bytes, not characters.
  assertProtocolError(() => decodeAwarenessEntries(one(JSON.stringify({ s: '€'.repeat(31) })), limits), 'AWARENESS_STATE_TOO_LARGE')
  // Reading without parsing: a removal is known by its bytes; bad JSON is found only when parsed.
  const update = encodeAwarenessUpdate([{ clientID: 1, clock: 1, state: null }, { clientID: 2, clock: 1, state: { a: 1 } }])
  const refs = [...readAwarenessUpdate(update)]
  assert.deepEqual(refs.map((r) => [r.clientID, isAwarenessRemoval(update, r)]), [[1, true], [2, false]])
  assert.deepEqual(parseAwarenessState(update, refs[1]!).state, { a: 1 })
  assertProtocolError(() => [...readAwarenessUpdate(bytes(2, 1, 1, 0))], 'TRUNCATED')
  assertProtocolError(() => [...readAwarenessUpdate(bytes(0, 9))], 'TRAILING_BYTES')
})

test('random garbage and hostile JSON through the bounded awareness decoder raise only ProtocolError', () => {
  let seed = 777
  const next = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n
  const pieces = ['[', ']', '{', '}', '"', '\\', ':', ',', '1e400', 'null', '{"a":', '€', '\u0000', ' ']
  const limits = { maxStateBytes: 512, maxDepth: 16 }
  for (let i = 0; i < 3000; i++) {
    const e = encoding.createEncoder()
    const n = next(4)
    encoding.writeVarUint(e, n)
    for (let j = 0; j < n; j++) {
      encoding.writeVarUint(e, next(2 ** 31))
      encoding.writeVarUint(e, next(100))
      encoding.writeVarString(e, Array.from({ length: next(i % 10 === 0 ? 400 : 40) }, () => pieces[next(pieces.length)]).join(''))
    }
    const buf = encoding.toUint8Array(e)
    // Some truncated or with a flipped byte.
    const input = i % 3 === 0 ? buf.subarray(0, next(buf.length + 1)) : buf
    if (i % 5 === 0 && input.length > 0) input[next(input.length)] ^= 1 << next(8)
    try {
      for (const entry of decodeAwarenessEntries(input, limits)) {
        assert.ok(entry.size <= limits.maxStateBytes + 16)
        JSON.stringify(entry.state)
      }
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `unexpected ${String(err)} for ${Buffer.from(input).toString('hex')}`)
    }
  }
})

test('a ProtocolError is a CoeditError whose code is one of ERROR_CODES; isErrorCode refuses anything else', () => {
  let thrown: unknown
  try {
    decodeClientMessage(bytes(0x80))
  } catch (err) {
    thrown = err
  }
  assert.ok(thrown instanceof ProtocolError && thrown instanceof CoeditError, 'a CoeditError, so the edges handle it as one')
  assert.equal(thrown.name, 'ProtocolError')
  assert.ok(isErrorCode(thrown.code))
  // What a server of another version (or a hostile one) might send the CLI as a code.
  for (const value of ['INTERNAL', 'truncated', '', 'toString', '__proto__', 'constructor', 42, null, undefined, {}, ['TRUNCATED']]) {
    assert.equal(isErrorCode(value), false, JSON.stringify(value) ?? String(value))
  }
})
