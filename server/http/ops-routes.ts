/**
 * The operator's HTTP routes over what `observability/` gathers: the probes (/healthz,
 * /readyz), /metrics and /status.json (the status page's data).
 */
import { bearerOf, refuse, type BearerGuard } from './bearer.js'
import { sendJson, sendText, type Route } from './http.js'
import { probeRoutes } from './probes.js'
import type { Ops } from '../observability/ops.js'

export interface OpsRoutesOptions {
  ops: Ops
  /** The guard of every bearer token (shared with the admin API: one count of wrong guesses). */
  tokens: BearerGuard
  /** --metrics-token: '' serves /metrics to anyone. */
  metricsToken: string
  /** --admin-token: '' (or a request without one) gets aggregate figures only on /status.json. */
  adminToken: string
}

export function opsRoutes({ ops, tokens, metricsToken, adminToken }: OpsRoutesOptions): Route[] {
  return [
    probeRoutes(() => ops.store, { shuttingDown: () => ops.isShuttingDown }),
    async (req, res, url) => {
      if (url.pathname !== '/metrics') return false
      const auth = tokens.check(req, metricsToken)
      if (!auth.ok) {
        refuse(res, auth, 'coedit metrics')
        sendText(res, auth.status, auth.status === 429 ? 'too many wrong tokens\n' : 'unauthorized\n')
        return true
      }
      const { contentType, body } = await ops.metrics.exposition()
      sendText(res, 200, body, contentType)
      return true
    },
    async (req, res, url) => {
      switch (url.pathname) {
        case '/status.json': {
          // Room names are share links and people's names are personal: only the admin token
          // shows them. Loopback is not trusted for this (a reverse proxy on this host is loopback).
          // Without a token (or without --admin-token) the figures are aggregate only.
          if (!adminToken || bearerOf(req) === undefined) {
            sendJson(res, 200, await ops.status(false))
            return true
          }
          const auth = tokens.check(req, adminToken)
          if (!auth.ok) {
            refuse(res, auth, 'coedit admin')
            sendJson(res, auth.status, auth.status === 429
              ? { error: 'too many wrong tokens', code: 'TOO_MANY_ATTEMPTS' }
              : { error: 'unauthorized', code: 'ADMIN_TOKEN_REQUIRED' })
            return true
          }
          sendJson(res, 200, await ops.status(true))
          return true
        }
        default:
          return false
      }
    },
  ]
}
