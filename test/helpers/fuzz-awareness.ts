/**
 * Structure-aware generators of hostile awareness messages for the fuzz suite: JSON
 * nested deep (arrays, objects, mixed, unclosed, brackets inside strings), many client IDs
 * (distinct, or one ID repeated), huge states (at the size limit, far over it, multi-byte
 * characters, numbers that grow when re-encoded), and entries for IDs other connections
 * own. A case is a small description (so fast-check prints and shrinks it); `buildFrames`
 * turns it into the bytes sent.
 */
import fc from 'fast-check'
import * as encoding from 'lib0/encoding'
import { encodeAwareness } from '../../server/room/protocol.js'

export type StateSpec =
  | { kind: 'deep'; shape: 'array' | 'object' | 'mixed' | 'unclosed' | 'in-string'; depth: number }
  | { kind: 'huge'; bytes: number; char: 'x' | '€' | '𝄞' }
  | { kind: 'numbers'; count: number }
  | { kind: 'small'; name: string }
  | { kind: 'removal' }

export type EntrySpec =
  /** IDs from `count` consecutive ones starting at `base` (or `base` repeated), each with `state`. */
  | { kind: 'ids'; base: number; count: number; repeat: boolean; clock: number; state: StateSpec }
  /** An ID another connection owns (the fuzz test passes who), with a state. */
  | { kind: 'foreign'; clock: number; state: StateSpec }

export interface AwarenessCase {
  frames: EntrySpec[][]
}

/** JSON text for a state, exactly as sent (hostile texts are not re-encoded). */
export function stateJson(s: StateSpec): string {
  switch (s.kind) {
    case 'deep':
      switch (s.shape) {
        case 'array': return '['.repeat(s.depth) + ']'.repeat(s.depth)
        case 'object': return '{"a":'.repeat(s.depth) + '1' + '}'.repeat(s.depth)
        case 'mixed': {
          let open = ''
          let close = ''
          for (let i = 0; i < s.depth; i++) {
            if (i % 2 === 0) { open += '{"k":'; close = '}' + close } else { open += '[0,'; close = ']' + close }
          }
          return open + 'null' + close
        }
        case 'unclosed': return '['.repeat(s.depth)
        case 'in-string': return JSON.stringify({ s: '['.repeat(s.depth) + '{'.repeat(s.depth) })
      }
      break
    case 'huge': {
      const unit = new TextEncoder().encode(s.char).length
      return JSON.stringify({ n: s.char.repeat(Math.max(0, Math.floor((s.bytes - 8) / unit))) })
    }
    case 'numbers': return `[${Array.from({ length: s.count }, () => '1e20').join(',')}]`
    case 'small': return JSON.stringify({ user: { name: s.name } })
    case 'removal': return 'null'
  }
  throw new Error('unreachable')
}

/** The frames of a case; `foreignId` is an ID another connection owns (the test's watcher). */
export function buildFrames(c: AwarenessCase, foreignId: number): Uint8Array[] {
  return c.frames.map((entries) => {
    const e = encoding.createEncoder()
    const flat: Array<[number, number, string]> = []
    for (const spec of entries) {
      const json = stateJson(spec.state)
      if (spec.kind === 'foreign') {
        flat.push([foreignId, spec.clock, json])
        continue
      }
      for (let i = 0; i < spec.count; i++) flat.push([spec.repeat ? spec.base : spec.base + i, spec.clock, json])
    }
    encoding.writeVarUint(e, flat.length)
    for (const [id, clock, json] of flat) {
      encoding.writeVarUint(e, id)
      encoding.writeVarUint(e, clock)
      encoding.writeVarString(e, json)
    }
    return encodeAwareness(encoding.toUint8Array(e))
  })
}

/** Around the default limits (64 deep, 64 KiB, 8 IDs) and far beyond them. */
export const stateArb: fc.Arbitrary<StateSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.record({
    kind: fc.constant('deep' as const),
    shape: fc.constantFrom('array' as const, 'object' as const, 'mixed' as const, 'unclosed' as const, 'in-string' as const),
    depth: fc.oneof(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 60, max: 12_000 })),
  }) },
  { weight: 2, arbitrary: fc.record({
    kind: fc.constant('huge' as const),
    bytes: fc.oneof(fc.integer({ min: 65_536 - 40, max: 65_536 + 40 }), fc.integer({ min: 1, max: 2 * 1024 * 1024 })),
    char: fc.constantFrom('x' as const, '€' as const, '𝄞' as const),
  }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('numbers' as const), count: fc.integer({ min: 1, max: 16_000 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('small' as const), name: fc.string({ maxLength: 20 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'removal' as const }) },
)

const clientId = fc.integer({ min: 1, max: 2 ** 32 - 1 })

export const entryArb: fc.Arbitrary<EntrySpec> = fc.oneof(
  { weight: 5, arbitrary: fc.record({
    kind: fc.constant('ids' as const),
    base: clientId,
    count: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 12 }) }, { weight: 1, arbitrary: fc.integer({ min: 1000, max: 60_000 }) }),
    repeat: fc.boolean(),
    clock: fc.nat({ max: 2 ** 32 }),
    // Many entries carry a small state: a frame stays a few MB at most.
    state: stateArb,
  }).map((e) => (e.count > 12 ? { ...e, state: { kind: 'small' as const, name: 'flood' } } : e)) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('foreign' as const), clock: fc.nat({ max: 2 ** 32 }), state: stateArb }) },
)

export const awarenessCaseArb: fc.Arbitrary<AwarenessCase> = fc.record({
  frames: fc.array(fc.array(entryArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
})
