/**
 * The sections of a Yjs v1 update: one per client, each a run of that client's structs.
 * Yjs writes every client once. A forged update can write one twice, and then Yjs disagrees
 * with itself: applying it keeps only the client's last section (readClientsStructRefs
 * replaces the first), while Y.decodeUpdate and Y.mergeUpdates read both. Merged (a relay
 * in a big room, a backup, an export) it would show what the room never applied. Y.decodeUpdate
 * cannot tell two sections of a client from one when their clocks follow on, so the section
 * headers are read here.
 *
 * Structs are skipped as Yjs's lazy reader (yjs/src/utils/updates.js) reads them; only
 * called on updates Y.decodeUpdate accepted.
 */
import * as decoding from 'lib0/decoding'

/** Item info bits (yjs/src/structs/Item.js): origin, right origin, parent key. */
const HAS_ORIGIN = 0x80
const HAS_RIGHT_ORIGIN = 0x40
const HAS_PARENT_SUB = 0x20
const CONTENT_REF = 0x1f
/** Type refs whose content carries a name (YXmlElement, YXmlHook). */
const NAMED_TYPE_REFS = new Set([3, 5])

/** The client of each section, in order. Throws on bytes that are not a v1 update. */
export function sectionClients(update: Uint8Array): number[] {
  const d = decoding.createDecoder(update)
  const sections = decoding.readVarUint(d)
  const clients: number[] = []
  for (let i = 0; i < sections; i++) {
    const structs = decoding.readVarUint(d)
    clients.push(decoding.readVarUint(d))
    decoding.readVarUint(d) // first clock
    for (let j = 0; j < structs; j++) skipStruct(d)
  }
  return clients
}

function skipStruct(d: decoding.Decoder): void {
  const info = decoding.readUint8(d)
  // A Skip (10) or a GC (content ref 0): a length.
  if (info === 10 || (info & CONTENT_REF) === 0) {
    decoding.readVarUint(d)
    return
  }
  if (info & HAS_ORIGIN) skipId(d)
  if (info & HAS_RIGHT_ORIGIN) skipId(d)
  if ((info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN)) === 0) {
    if (decoding.readVarUint(d) === 1) skipBytes(d)
    else skipId(d)
    if (info & HAS_PARENT_SUB) skipBytes(d)
  }
  skipContent(d, info & CONTENT_REF)
}

/** Skips a string (or byte array): its length, then its bytes, undecoded. */
function skipBytes(d: decoding.Decoder): void {
  const length = decoding.readVarUint(d)
  if (d.pos + length > d.arr.length) throw new Error('unexpected end of update')
  d.pos += length
}

function skipId(d: decoding.Decoder): void {
  decoding.readVarUint(d)
  decoding.readVarUint(d)
}

function skipContent(d: decoding.Decoder, ref: number): void {
  switch (ref) {
    case 1: // deleted: a length
      decoding.readVarUint(d)
      return
    case 2: { // JSON: strings
      const n = decoding.readVarUint(d)
      for (let i = 0; i < n; i++) skipBytes(d)
      return
    }
    case 3: // binary
      skipBytes(d)
      return
    case 4: // string
    case 5: // embed (JSON text)
      skipBytes(d)
      return
    case 6: // format: key, JSON text
      skipBytes(d)
      skipBytes(d)
      return
    case 7: // type
      if (NAMED_TYPE_REFS.has(decoding.readVarUint(d))) skipBytes(d)
      return
    case 8: { // any
      const n = decoding.readVarUint(d)
      for (let i = 0; i < n; i++) decoding.readAny(d)
      return
    }
    case 9: // subdocument: guid, options
      skipBytes(d)
      decoding.readAny(d)
      return
    default:
      throw new Error(`unknown content ref ${ref}`)
  }
}
