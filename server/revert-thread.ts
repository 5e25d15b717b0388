/**
 * Runs computeRevert in a worker thread (server/revert-worker). From TypeScript sources
 * (tests, `tsx`) the worker first registers tsx: workers do not inherit its loader.
 */
import { Worker } from 'node:worker_threads'
import { CoeditError } from './errors.js'

export function computeRevertInWorker(current: Uint8Array, old: Uint8Array): Promise<Uint8Array> {
  const fromSource = import.meta.url.endsWith('.ts')
  const entry = new URL(fromSource ? './revert-worker.ts' : './revert-worker.js', import.meta.url)
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(entry.href)})`
  const worker = new Worker(fromSource ? new URL(`data:text/javascript,${encodeURIComponent(boot)}`) : entry, { workerData: { current, old } })
  return new Promise<Uint8Array>((resolve, reject) => {
    let done = false
    worker.once('message', (update: Uint8Array) => {
      done = true
      resolve(new Uint8Array(update))
      void worker.terminate()
    })
    worker.once('error', (err) => {
      done = true
      reject(new CoeditError('REVERT_FAILED', `computing the revert failed: ${err.message}`, { cause: err }))
    })
    worker.once('exit', (code) => {
      if (!done) reject(new CoeditError('REVERT_FAILED', `the revert worker exited with code ${code}`))
    })
  })
}
