/**
 * Access tokens in the editor. A token travels in the page's fragment
 * (`/r/<room>#token=<jwt>`), which browsers never send to the server or log, and goes to
 * the server as the WebSocket's `token` query parameter. The page reads the token's
 * `access` claim (without verifying it: the server does that) only to know whether to
 * offer editing at all.
 */

export function tokenFromFragment(hash: string): string | undefined {
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('token')
  return token ? token : undefined
}

/** The `access` claim: 'write', or 'read' (also when absent, as the server reads it). */
export function accessOf(token: string): 'read' | 'write' {
  try {
    const payload = token.split('.')[1] ?? ''
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='))
    const claims = JSON.parse(json) as { access?: unknown }
    return claims.access === 'write' ? 'write' : 'read'
  } catch {
    // Not a JWT we can read: let the server decide, and its answer will show.
    return 'write'
  }
}
