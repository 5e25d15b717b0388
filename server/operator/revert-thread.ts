/**
 * Runs computeRevert in a worker thread (server/operator/revert-worker). From TypeScript sources
 * (tests, `tsx`) the worker first registers tsx: workers do not inherit its loader.
 */
import { Worker } from 'node:worker_threads'
import { CoeditError } from '../errors.js'
import type { Containment } from '../base/containment.js'

/**
 * An exception in the worker (a stack overflow on a hostile document, say) ends the worker,
 * not the server: it is reported to `containment` and the revert fails with REVERT_FAILED.
 */
export function computeRevertInWorker(current: Uint8Array, old: Uint8Array, containment?: Containment, room?: string): Promise<Uint8Array> {
  const fromSource = import.meta.url.endsWith('.ts')
  const entry = new URL(fromSource ? './revert-worker.ts' : './revert-worker.js', import.meta.url)
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(entry.href)})`
  const worker = new Worker(fromSource ? new URL(`data:text/javascript,${encodeURIComponent(boot)}`) : entry, { workerData: { current, old, fault: containment?.injected('revert', room) } })
  return new Promise<Uint8Array>((resolve, reject) => {
    let done = false
    worker.once('message', (update: Uint8Array) => {
      done = true
      resolve(new Uint8Array(update))
      void worker.terminate()
    })
    worker.once('error', (err) => {
      done = true
      containment?.report('revert', err, { room })
      reject(new CoeditError('REVERT_FAILED', `computing the revert failed: ${err.message}`, { cause: err }))
    })
    worker.once('exit', (code) => {
      if (!done) containment?.report('revert', new Error(`the revert worker exited with code ${code}`), { room })
      if (!done) reject(new CoeditError('REVERT_FAILED', `the revert worker exited with code ${code}`))
    })
  })
}
