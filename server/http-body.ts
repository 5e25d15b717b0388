/**
 * Request bodies and JSON errors of the HTTP APIs (admin, documents): bodies are bounded
 * before and while they are read, and errors go out as `{ error: { code, message } }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CoeditError } from './errors.js'
import { sendJson } from './http.js'

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
 * Answers `err` as `{ error: { code, message } }` with the status `statuses` gives its
 * code (500 otherwise, with no detail for errors that are not ours).
 */
export function sendJsonError(res: ServerResponse, err: unknown, statuses: Readonly<Record<string, number>>): void {
  const thrown = (err as { code?: unknown }).code
  const code = err instanceof CoeditError ? err.code : thrown === 'BAD_UPDATE' || thrown === 'TOO_DEEP' ? thrown : 'INTERNAL'
  const status = statuses[code] ?? 500
  const message = status === 500 && !(err instanceof CoeditError) ? 'internal error' : (err as Error).message
  // The rest of a refused body is not worth reading: close instead of keeping the connection.
  if (status === 413) res.setHeader('Connection', 'close')
  sendJson(res, status, { error: { code, message } })
}
