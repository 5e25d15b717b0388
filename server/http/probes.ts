/**
 * Probes for load balancers and orchestrators. /healthz: the process is up and serving
 * HTTP. /readyz: the store is open and writable and the server is not shutting down;
 * 503 otherwise, so traffic moves elsewhere before connections are closed.
 */
import type { Route } from './http.js'
import { sendJson } from './http.js'
import { isPingableStore, type Store } from '../persistence/store.js'

/** A store that has not answered within this is as good as down. */
const PING_TIMEOUT = 2000

export interface ProbeState {
  shuttingDown(): boolean
}

/** `store` is asked for at each request: undefined while the server is still starting (not ready). */
export function probeRoutes(store: () => Store | undefined, state: ProbeState): Route {
  return async (_req, res, url) => {
    if (url.pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' })
      return true
    }
    if (url.pathname !== '/readyz') return false
    const current = store()
    if (state.shuttingDown() || !current) {
      sendJson(res, 503, { status: current ? 'shutting_down' : 'starting' })
      return true
    }
    if (!isPingableStore(current)) {
      sendJson(res, 200, { status: 'ready', storage: 'unchecked' })
      return true
    }
    const problem = await pingWithin(() => current.ping(), PING_TIMEOUT)
    if (problem) sendJson(res, 503, { status: 'storage_unavailable', code: problem })
    else sendJson(res, 200, { status: 'ready', storage: 'ok' })
    return true
  }
}

/** Undefined if the ping succeeded in time; else the error's code. */
async function pingWithin(ping: () => Promise<void>, timeout: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      ping().then(() => undefined),
      new Promise<string>((resolve) => { timer = setTimeout(() => resolve('STORE_TIMEOUT'), timeout) }),
    ])
  } catch (err) {
    return (err as { code?: string }).code ?? 'STORE_ERROR'
  } finally {
    clearTimeout(timer)
  }
}
