/** Structured logging: one JSON line per meaningful event (pino). Never log tokens or document content. */
import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/**
 * JSON lines, unless writing to a terminal (no `destination` and stdout is a TTY): then
 * readable colored lines. Token-like fields are censored should one ever reach a log call.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: { svc: 'coedit' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', 'authorization', 'secret', '*.token', '*.authorization', '*.secret'], censor: '[redacted]' },
  }
  if (destination === undefined && process.stdout.isTTY) {
    return pino(options, pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'svc,pid,hostname' }))
  }
  return pino(options, destination ?? process.stdout)
}
