/**
 * Errors of coedit's JSON HTTP APIs (the admin API, the history API): `{ error: { code,
 * message } }` with an HTTP status chosen by the code, and the bound on bodies that none
 * are expected for.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CoeditError, type ErrorCode } from './errors.js'
import { sendJson } from './http.js'

/** Endpoints that take no body still get a bound: a declared body past this is refused (413). */
export const MAX_EMPTY_BODY = 64 * 1024

export const ERROR_STATUS: Readonly<Partial<Record<ErrorCode, number>>> = {
  UNAUTHORIZED: 401,
  TOO_MANY_ATTEMPTS: 429,
  READ_ONLY: 403,
  ORIGIN_FORBIDDEN: 403,
  ROOM_NOT_FOUND: 404,
  VERSION_NOT_FOUND: 404,
  NOT_FOUND: 404,
  BAD_REQUEST: 400,
  BAD_ROOM_NAME: 400,
  BAD_FILE: 400,
  BAD_BACKUP: 400,
  BAD_TIME: 400,
  BAD_UPDATE: 400,
  TOO_DEEP: 422,
  NOT_TEXT: 400,
  DIFF_TOO_COSTLY: 422,
  NOT_EMPTY: 409,
  TOO_LARGE: 413,
  HISTORY_UNAVAILABLE: 501,
}

/** Refuses a body whose declared length is past `limit` before reading any of it. */
export function checkDeclaredLength(req: IncomingMessage, limit: number, option: string): void {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw new CoeditError('TOO_LARGE', `the body is larger than ${limit} bytes (${option})`)
}

/**
 * Answers `err` as JSON with the status its code maps to (500 and no detail for anything
 * unexpected). Mid-stream (headers sent: a backup) it cuts the connection instead, so the
 * client sees a truncated file.
 */
export function sendApiError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy(err as Error)
    return
  }
  // A ProtocolError (a refused import) is a CoeditError too.
  const known = err instanceof CoeditError ? err.code : undefined
  const code = known ?? 'INTERNAL'
  const status = known ? ERROR_STATUS[known] ?? 500 : 500
  const message = status === 500 && !(err instanceof CoeditError) ? 'internal error' : (err as Error).message
  // The rest of a refused body is not worth reading: close instead of keeping the connection.
  if (status === 413) res.setHeader('Connection', 'close')
  sendJson(res, status, { error: { code, message } })
}
