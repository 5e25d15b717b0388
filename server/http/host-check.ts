/**
 * DNS rebinding: a page on evil.example whose name is made to resolve to 127.0.0.1 talks
 * to a server on loopback as its own origin (the browser's same-origin rule compares names,
 * not addresses), so the own-origin check passes. The one thing it cannot forge is `Host`:
 * the browser sends the attacker's name. A server listening on loopback therefore answers
 * only requests addressed to a loopback name (as dev servers do).
 *
 * Off when the server listens on a non-loopback interface (its names are not known) and
 * behind --trust-proxy (the proxy decides which names reach coedit).
 */
import type { IncomingMessage } from 'node:http'
import { isLoopback } from '../transport/limits.js'

export interface HostCheckConfig {
  host: string
  allowedOrigins: string
  trustProxy: boolean
}

/** A predicate on requests, or undefined when every Host is fine. */
export function hostCheck(config: HostCheckConfig): ((req: IncomingMessage) => boolean) | undefined {
  const bound = normalize(config.host)
  if (config.trustProxy || !(bound === 'localhost' || isLoopback(bound))) return undefined
  const names = new Set(['localhost', '127.0.0.1', '::1', bound])
  // The hosts of --allowed-origins: an operator who lists a name means to use it.
  for (const item of config.allowedOrigins.split(',')) {
    if (URL.canParse(item.trim())) names.add(normalize(new URL(item.trim()).hostname))
  }
  return (req) => {
    const header = req.headers.host
    // HTTP/1.0 without Host is no browser (browsers always send it).
    if (header === undefined) return true
    const name = hostnameOf(header)
    return name !== undefined && (names.has(name) || name.endsWith('.localhost'))
  }
}

/** `example.com:1234` → `example.com`, `[::1]:1234` → `::1`; undefined if malformed. */
export function hostnameOf(header: string): string | undefined {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d*)?$/i.exec(header.trim())
  if (!m) return undefined
  return normalize(m[1] ?? m[2]!)
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '')
}
