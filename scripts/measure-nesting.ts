/**
 * Measures the nesting depth of shared types at which Yjs operations stop being safe on
 * this Node's default stack (V8's --stack-size, 984 KB on Node 20, whatever `ulimit -s`
 * says). Each probe runs in a fresh process (a warmed-up JIT has smaller frames, so a
 * fresh one is the worst case we care about: a room loading right after a restart).
 * Prints, per type and operation, the largest depth that succeeded (binary search).
 *
 *   node --import tsx scripts/measure-nesting.ts            # the table
 *   node --import tsx scripts/measure-nesting.ts map gc 5000  # one probe: exit 0 = ok
 *
 * The figures are in the README ("Persistence"); --max-nesting-depth stays far under them.
 */
import { spawnSync } from 'node:child_process'
import * as Y from 'yjs'
import { computeRevert, docToJson, exportDoc } from '../server/operator/doc-ops.js'
import { docFromUpdates } from '../server/room/yjs-log.js'

const KINDS = ['map', 'array', 'xmlelement', 'xmltext', 'xmlfragment', 'mixed'] as const
type Kind = (typeof KINDS)[number]
const OPS = ['build', 'integrate', 'encode', 'delete', 'gc', 'load', 'tojson', 'export', 'revert'] as const
type Op = (typeof OPS)[number]

// any: the child types differ by kind; each is only inserted into its parent.
type AnyType = Y.AbstractType<any>

function fresh(kind: Kind, i: number): AnyType {
  const k = kind === 'mixed' ? (['map', 'array', 'xmlelement', 'xmltext', 'xmlfragment'] as const)[i % 5]! : kind
  switch (k) {
    case 'map': return new Y.Map()
    case 'array': return new Y.Array()
    case 'xmlelement': return new Y.XmlElement('p')
    case 'xmltext': return new Y.XmlText()
    case 'xmlfragment': return new Y.XmlFragment()
  }
}

function put(parent: AnyType, child: AnyType): void {
  if (parent instanceof Y.Map) parent.set('k', child)
  else if (parent instanceof Y.XmlText) parent.insertEmbed(0, child)
  else (parent as Y.Array<AnyType>).insert(0, [child])
}

/** A document whose root `r` holds `depth` nested types (one per transaction: no recursion in building). */
function build(kind: Kind, depth: number, gc = true): Y.Doc {
  const doc = new Y.Doc({ gc })
  let parent: AnyType = kind === 'map' ? doc.getMap('r') : kind === 'xmltext' ? (doc.get('r', Y.XmlText) as Y.XmlText) : kind === 'array' ? doc.getArray('r') : doc.getXmlFragment('r')
  doc.transact(() => {
    for (let i = 0; i < depth; i++) {
      const child = fresh(kind, i)
      put(parent, child)
      parent = child
    }
  })
  return doc
}

function deleteOutermost(doc: Y.Doc, kind: Kind): void {
  if (kind === 'map') doc.getMap('r').delete('k')
  else if (kind === 'xmltext') (doc.get('r', Y.XmlText) as Y.XmlText).delete(0, 1)
  else if (kind === 'array') doc.getArray('r').delete(0, 1)
  else doc.getXmlFragment('r').delete(0, 1)
}

function probe(kind: Kind, op: Op, depth: number): void {
  const doc = build(kind, depth, op !== 'delete')
  const state = Y.encodeStateAsUpdate(doc)
  switch (op) {
    case 'build': return
    case 'integrate': { const d = new Y.Doc(); Y.applyUpdate(d, state); return }
    case 'encode': Y.encodeStateAsUpdate(doc); Y.mergeUpdates([state, state]); return
    case 'delete': deleteOutermost(doc, kind); return // gc off: the deletion alone
    case 'gc': deleteOutermost(doc, kind); return // gc on: deletion, then GC at the transaction's end
    case 'load': {
      // The attack: the content, then a delete-set-only update for its outermost type, stored as a log and loaded.
      const sv = Y.encodeStateVector(doc)
      deleteOutermost(doc, kind)
      const del = Y.encodeStateAsUpdate(doc, sv)
      docFromUpdates([state, del]).destroy()
      return
    }
    case 'tojson': docToJson(docFromUpdates([state])); return
    case 'export': exportDoc(docFromUpdates([state]), 'update'); exportDoc(docFromUpdates([state]), 'json'); return
    case 'revert': computeRevert(state, Y.encodeStateAsUpdate(new Y.Doc())); return
  }
}

function ok(kind: Kind, op: Op, depth: number): boolean {
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, kind, op, String(depth)], { encoding: 'utf8' })
  return r.status === 0
}

/** Largest depth (up to `max`) at which the probe succeeds, assuming success is monotone. */
function limit(kind: Kind, op: Op, max: number): number {
  if (ok(kind, op, max)) return max
  let lo = 1
  let hi = max
  while (hi - lo > Math.max(10, lo / 50)) {
    const mid = Math.floor((lo + hi) / 2)
    if (ok(kind, op, mid)) lo = mid
    else hi = mid
  }
  return lo
}

const [kindArg, opArg, depthArg] = process.argv.slice(2)
if (kindArg && opArg && depthArg) {
  try {
    probe(kindArg as Kind, opArg as Op, Number(depthArg))
    process.exit(0)
  } catch (err) {
    process.stderr.write(`${(err as Error).name}: ${(err as Error).message}\n`)
    process.exit(1)
  }
} else {
  const max = Number(process.env.MAX_DEPTH ?? 40_000)
  const kinds = (process.env.KINDS?.split(',') ?? KINDS) as Kind[]
  const ops = (process.env.OPS?.split(',') ?? OPS) as Op[]
  console.log(`Node ${process.version}, yjs ${(await import('yjs/package.json', { with: { type: 'json' } })).default.version}: largest safe depth (≥ ${max} = no limit found)`)
  console.log(`| type | ${ops.join(' | ')} |`)
  console.log(`|---|${ops.map(() => '---:').join('|')}|`)
  for (const kind of kinds) {
    const row = ops.map((op) => limit(kind, op, max))
    console.log(`| ${kind} | ${row.map((n) => n.toLocaleString('en-US')).join(' | ')} |`)
  }
}
