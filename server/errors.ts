/**
 * coedit's errors. Each carries a stable `code` that callers, the admin API's JSON and tests
 * match on instead of message text; the codes are one typed list, so a misspelt code is a
 * compile error rather than a branch that never runs. Pure: imports nothing (the browser
 * bundle reaches this module through the protocol codec).
 */

/** Every code a CoeditError (ProtocolError included) may carry, by where it arises. */
export const ERROR_CODES = [
  // The wire protocol (ProtocolError): malformed or out-of-bounds frames and updates.
  'TRUNCATED', 'VARINT_TOO_LARGE', 'TRAILING_BYTES', 'BAD_UTF8', 'UNKNOWN_MESSAGE_TYPE', 'UNKNOWN_SYNC_TYPE',
  'UNKNOWN_AUTH_TYPE', 'UNKNOWN_COEDIT_TYPE', 'BAD_STATE_VECTOR', 'BAD_UPDATE', 'IMPLAUSIBLE_CLOCK', 'TOO_DEEP',
  'BAD_AWARENESS_JSON', 'AWARENESS_STATE_TOO_LARGE', 'AWARENESS_TOO_DEEP', 'AWARENESS_TOO_MANY_CLIENTS',
  // An update carrying content of a deleted room (a tombstone: server/room/tombstone.ts).
  'DELETED_CONTENT',
  // Storage.
  'STORE_CLOSED', 'STORE_LOCKED', 'STORE_OPEN_FAILED', 'STORE_MIGRATION_FAILED', 'STORE_FORMAT_NEWER',
  'STORE_WRITE_FAILED', 'STORE_PING_FAILED', 'BAD_SCHEMA',
  // Starting the server: option combinations (validateConfig) and configuration that only shows when it is used.
  'BAD_OPTIONS', 'NOT_LISTENING', 'AUTH_SECRET_TOO_SHORT', 'AUTH_KEY_MISSING', 'AUTH_KEY_UNREADABLE', 'AUTH_KEY_INVALID', 'AUTH_KEY_UNSUPPORTED',
  'BAD_ORIGIN', 'BAD_ROOM_NAME_PATTERN', 'TLS_INCOMPLETE', 'TLS_UNREADABLE', 'WEBHOOK_SECRET_INVALID',
  'WEBHOOK_SECRET_TOO_SHORT', 'CLUSTER_INCOMPLETE', 'AUTH_OPTIONS_EXCLUSIVE', 'REDIS_FAILED', 'PORT_IN_USE', 'LISTEN_FAILED', 'AUTH_TIMEOUT',
  // Rooms and documents: the operator verbs and the admin API.
  'TOO_MANY_ROOMS', 'ROOM_NOT_FOUND', 'ROOM_UNREADABLE', 'BAD_ROOM_NAME', 'VERSION_NOT_FOUND', 'HISTORY_UNAVAILABLE',
  'BAD_TIME', 'BAD_FILE', 'NOT_TEXT', 'DIFF_TOO_COSTLY', 'REVERT_FAILED', 'BAD_BACKUP', 'RESTORE_VERIFY_FAILED', 'TOMBSTONES_UNSUPPORTED',
  'NOT_EMPTY', 'ROOM_DELETED', 'BAD_CLOSE_CODE', 'BAD_CLOSE_REASON', 'BAD_REQUEST', 'NOT_FOUND', 'TOO_LARGE', 'UNAUTHORIZED', 'TOO_MANY_ATTEMPTS', 'READ_ONLY', 'ORIGIN_FORBIDDEN',
  // Server-side documents and the document API.
  'BAD_JSON', 'BAD_CONTENT_TYPE', 'METHOD_NOT_ALLOWED', 'NOT_PLAIN_TEXT', 'DOCUMENT_TOO_LARGE', 'MESSAGE_RATE', 'BYTE_RATE',
  'TOO_MANY_NEW_ROOMS', 'STORE_FAILED', 'SHUTTING_DOWN', 'ROOM_UNAVAILABLE', 'BAD_USER',
  // Refusals of the Authorizer (server/transport/auth.ts, server/transport/authorizer.ts), passed on by the HTTP APIs.
  'TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'ROOM_FORBIDDEN', 'AUTH_REFUSED', 'AUTH_ERROR',
  // The CLI: files, data directories and the server it talks to.
  'FILE_NOT_FOUND', 'FILE_UNREADABLE', 'FILE_UNWRITABLE', 'SOURCE_NOT_FOUND', 'SOURCE_UNREADABLE', 'BAD_DATA_DIR',
  'NO_DATA_DIR', 'BAD_SERVER_URL', 'SERVER_UNREACHABLE', 'NO_ADMIN_API', 'SERVER_ERROR', 'BACKUP_INTERRUPTED',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

/** Whether `value` is one of coedit's codes (one read from the network may be anything). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value)
}

/** An error with a stable `code` that callers and tests match on instead of message text. */
export class CoeditError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CoeditError'
    this.code = code
  }
}

/** Bad usage: an unknown flag, a missing argument, a malformed value. Exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}
