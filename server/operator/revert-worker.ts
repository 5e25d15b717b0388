/**
 * Worker entry: computes a revert (see computeRevert) off the server's event loop, so a
 * revert over thousands of edits does not stall every room for seconds.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { computeRevert } from './doc-ops.js'

const { current, old, fault } = workerData as { current: Uint8Array; old: Uint8Array; fault?: boolean }
// Fault injection (tests, see containment.ts): the containment lives in the server's thread.
if (fault) throw new Error('injected fault on revert')
const update = computeRevert(current, old)
parentPort!.postMessage(update, [update.buffer as ArrayBuffer])
