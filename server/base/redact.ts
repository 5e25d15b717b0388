/**
 * Connection strings and webhook URLs carry credentials (`redis://:PASSWORD@host`,
 * `postgres://user:PASSWORD@host/db?sslpassword=…`, `https://user:PASSWORD@hooks/…?key=…`).
 * Whatever is logged or thrown about them goes through here first: `redactUrl` for the
 * URL itself, `Redactor.text` for error messages from drivers that may quote it.
 */

const MASK = '***'
/** Query parameters whose values are secrets; other parameters (sslmode, db) help debugging and stay. */
const SECRET_PARAM = /pass|secret|token|key|auth|sig|cred/i
/** libpq's key=value form (`host=db password=x`), which is not a URL. */
const KEYWORD_SECRET = /\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/gi

/**
 * The URL with its password, a lone user name (it is often a token) and secret query
 * values replaced by `***`; a user name beside a password stays (it says which account).
 * Text that is not a URL keeps only what cannot be a libpq password.
 */
export function redactUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return url.replace(KEYWORD_SECRET, (_m, key: string) => `${key}=${MASK}`)
  }
  if (u.password) u.password = MASK
  else if (u.username) u.username = MASK
  for (const [key] of [...u.searchParams]) if (SECRET_PARAM.test(key)) u.searchParams.set(key, MASK)
  // URLSearchParams encodes the mask; show it as written.
  return u.toString().replaceAll(encodeURIComponent(MASK), MASK)
}

/** The substrings of `url` that must never be printed: each in its raw and decoded forms. */
function secretsOf(url: string): string[] {
  const found: string[] = []
  let u: URL | undefined
  try {
    u = new URL(url)
  } catch {
    for (const m of url.matchAll(KEYWORD_SECRET)) found.push(m[2]!.replace(/^'|'$/g, ''))
  }
  if (u) {
    if (u.password) found.push(u.password)
    else if (u.username) found.push(u.username)
    for (const [key, value] of u.searchParams) if (SECRET_PARAM.test(key) && value) found.push(value)
  }
  const forms = found.flatMap((s) => {
    try {
      return [s, decodeURIComponent(s), encodeURIComponent(decodeURIComponent(s))]
    } catch {
      return [s]
    }
  })
  // Longest first, so a secret containing another is masked whole; tiny ones would mask half the message.
  return [...new Set(forms)].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length)
}

/** Scrubs the credentials of a fixed set of URLs out of any text (error messages of drivers, fetch). */
export class Redactor {
  private readonly urls: Array<[string, string]>
  private readonly secrets: string[]

  constructor(urls: readonly string[]) {
    const given = urls.filter((u) => u !== '')
    this.urls = given.map((u) => [u, redactUrl(u)])
    this.secrets = [...new Set(given.flatMap(secretsOf))]
  }

  text(text: string): string {
    let out = text
    for (const [url, shown] of this.urls) out = out.replaceAll(url, shown)
    for (const secret of this.secrets) out = out.replaceAll(secret, MASK)
    return out
  }
}
