/**
 * Errors and bodies of coedit's JSON HTTP APIs (admin, history, documents): errors go out as
 * `{ error: { code, message } }` with an HTTP status chosen by the code, and bodies are
 * bounded before and while they are read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CoeditError, type ErrorCode } from '../errors.js'
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
  IMPLAUSIBLE_CLOCK: 400,
  TOO_DEEP: 422,
  NOT_TEXT: 400,
  DIFF_TOO_COSTLY: 422,
  NOT_EMPTY: 409,
  // A deleted room's content sent again (a tombstone), or a room deleted while the request was on its way.
  DELETED_CONTENT: 409,
  ROOM_DELETED: 409,
  TOO_LARGE: 413,
  HISTORY_UNAVAILABLE: 501,
}

/** A refusal whose status is not its code's (an authorization's 401/403/500/503 comes with its own). */
export class ApiRefusal extends CoeditError {
  constructor(code: ErrorCode, message: string, readonly status: number) {
    super(code, message)
  }
}

/** Refuses a body whose declared length is past `limit` before reading any of it. */
export function checkDeclaredLength(req: IncomingMessage, limit: number, option: string): void {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw new CoeditError('TOO_LARGE', `the body is larger than ${limit} bytes (${option})`)
}

/**
 * The body's chunks, failing with TOO_LARGE once more than `limit` bytes came (a chunked
 * body declares no length). The request is not destroyed, so the 413 still gets out.
 */
export async function* limitedBody(req: IncomingMessage, limit: number, option: string): AsyncGenerator<Buffer> {
  checkDeclaredLength(req, limit, option)
  let size = 0
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new CoeditError('TOO_LARGE', `the body is larger than ${limit} bytes (${option})`)
    yield chunk
  }
}

export async function readBody(req: IncomingMessage, limit: number, option = '--max-message-size'): Promise<Uint8Array> {
  const parts: Buffer[] = []
  for await (const chunk of limitedBody(req, limit, option)) parts.push(chunk)
  return new Uint8Array(Buffer.concat(parts))
}

/**
 * Answers `err` as JSON with the status its code maps to (ERROR_STATUS, or an API's own
 * `statuses` where its meaning differs; 500 and no detail for anything unexpected).
 * Mid-stream (headers sent: a backup) it cuts the connection instead, so the client sees a
 * truncated file.
 */
export function sendApiError(res: ServerResponse, err: unknown, statuses: Readonly<Partial<Record<ErrorCode, number>>> = ERROR_STATUS): void {
  if (res.headersSent) {
    res.destroy(err as Error)
    return
  }
  // A ProtocolError (a refused import) is a CoeditError too.
  const known = err instanceof CoeditError ? err.code : undefined
  const code = known ?? 'INTERNAL'
  const status = err instanceof ApiRefusal ? err.status : known ? statuses[known] ?? ERROR_STATUS[known] ?? 500 : 500
  const message = status === 500 && !(err instanceof CoeditError) ? 'internal error' : (err as Error).message
  // The rest of a refused body is not worth reading: close instead of keeping the connection.
  if (status === 413) res.setHeader('Connection', 'close')
  sendJson(res, status, { error: { code, message } })
}
