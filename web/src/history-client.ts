/**
 * The history panel's calls to coedit's history API (server/http/history-api.ts), authorized
 * by the editor's own access token, sent as `Authorization: Bearer` (never in the URL).
 */

interface MomentBase {
  /** The instant, ms since the epoch (server clock). */
  at: number
  /** What names this moment to the server: `?t=` and `?to=`. */
  t: string
  bytes: number
}

export interface EditsMoment extends MomentBase {
  kind: 'edits'
  from: number
  updates: number
  users: string[]
}

export interface VersionMoment extends MomentBase {
  kind: 'version'
  id: number
  pinned?: boolean
}

export type Moment = EditsMoment | VersionMoment

export interface Listing {
  room: string
  /** The server's clock when it answered: relative times are counted from it. */
  now: number
  canRestore: boolean
  exactSince?: number
  moments: Moment[]
  next?: string
}

export interface TextAt {
  at: number
  exact: boolean
  version?: number
  text: string
}

export class HistoryError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message)
  }
}

export class HistoryClient {
  private readonly base: string

  constructor(room: string, private readonly token: string | undefined) {
    this.base = `/api/rooms/${encodeURIComponent(room)}`
  }

  list(cursor?: string): Promise<Listing> {
    return this.call('GET', `/history${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`)
  }

  textAt(t: string): Promise<TextAt> {
    return this.call('GET', `/at?t=${encodeURIComponent(t)}`)
  }

  restore(t: string): Promise<unknown> {
    return this.call('POST', `/revert?to=${encodeURIComponent(t)}`)
  }

  private async call<T>(method: string, path: string): Promise<T> {
    let res: Response
    try {
      res = await fetch(this.base + path, { method, headers: this.token ? { Authorization: `Bearer ${this.token}` } : {}, cache: 'no-store' })
    } catch {
      throw new HistoryError('OFFLINE', 'the server cannot be reached', 0)
    }
    const body = await res.json().catch(() => undefined) as { error?: { code?: string; message?: string } } | undefined
    if (!res.ok || !body) {
      throw new HistoryError(body?.error?.code ?? 'HTTP_ERROR', body?.error?.message ?? `the server answered ${res.status}`, res.status)
    }
    return body as T
  }
}
