/** The wire codec: every encoder round-trips through its decoder; malformed input is a coded ProtocolError. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import {
  ProtocolError, decodeAwarenessUpdate, decodeClientMessage, decodeServerMessage, encodeAuthDenied,
  encodeAwareness, encodeAwarenessUpdate, encodeCoeditPersisted, encodeQueryAwareness, encodeSyncStep1,
  encodeSyncStep2, encodeSyncUpdate, MESSAGE_SYNC,
} from '../server/protocol.js'

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
