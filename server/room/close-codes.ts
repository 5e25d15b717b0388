/**
 * WebSocket close codes coedit sends, as `{ code, reason }` pairs.
 *
 * The stock y-websocket provider (3.x) stops reconnecting on 4400-4499 and retries on
 * everything else, so "your fault, retrying will not help" is 44xx and "our fault,
 * try again" is 1001/1011/1013 or 45xx.
 */
export interface CloseCode {
  readonly code: number
  readonly reason: string
}

export const CLOSE_NORMAL: CloseCode = { code: 1000, reason: 'normal closure' }
export const CLOSE_GOING_AWAY: CloseCode = { code: 1001, reason: 'server shutting down' }
export const CLOSE_UNSUPPORTED_DATA: CloseCode = { code: 1003, reason: 'text frames are not part of the protocol' }
export const CLOSE_MESSAGE_TOO_BIG: CloseCode = { code: 1009, reason: 'message too big' }
export const CLOSE_INTERNAL_ERROR: CloseCode = { code: 1011, reason: 'internal error' }
export const CLOSE_TRY_AGAIN_LATER: CloseCode = { code: 1013, reason: 'try again later' }
export const CLOSE_BAD_MESSAGE: CloseCode = { code: 4400, reason: 'malformed message' }
/** An empty, too long or unsafe room name: sent after the upgrade, since an HTTP 400 only makes the provider retry. */
export const CLOSE_BAD_ROOM_NAME: CloseCode = { code: 4400, reason: 'room name refused' }
export const CLOSE_UNAUTHORIZED: CloseCode = { code: 4401, reason: 'unauthorized' }
export const CLOSE_FORBIDDEN: CloseCode = { code: 4403, reason: 'forbidden' }
export const CLOSE_SLOW_CONSUMER: CloseCode = { code: 4408, reason: 'not reading fast enough: too much unsent data' }
export const CLOSE_DOCUMENT_TOO_LARGE: CloseCode = { code: 4413, reason: 'document size limit reached' }
/**
 * The room was deleted (`rooms.delete`, `DELETE /admin/rooms/ROOM`, `coedit delete`), or an
 * update carries content of a deleted room (tombstone: reason `DELETED_CONTENT: ...`). 44xx:
 * a stock provider that retried would send its copy of the deleted document straight back.
 * HTTP's 410 Gone.
 */
export const CLOSE_ROOM_DELETED: CloseCode = { code: 4410, reason: 'room deleted: discard the local copy' }
export const CLOSE_RATE_LIMITED: CloseCode = { code: 4429, reason: 'rate limit exceeded' }
/** --max-new-rooms-per-minute: 44xx so that the provider does not retry into the same wall. */
export const CLOSE_TOO_MANY_NEW_ROOMS: CloseCode = { code: 4429, reason: 'too many new rooms from this address, try again in a minute' }

/** Close reasons travel in a control frame whose payload is at most 125 bytes. */
/** What ws accepts to send (RFC 6455 7.4): 1000-1014 less the reserved ones, and 3000-4999. */
export function sendableCloseCode(code: number): boolean {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999))
}

export function closeReason(reason: string): string {
  const bytes = Buffer.from(reason, 'utf8')
  if (bytes.length <= 123) return reason
  return bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '') + '...'
}
