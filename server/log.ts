/** Structured logging: one JSON line per meaningful event (pino). Never log tokens or document content. */
import { pino, type Logger } from 'pino'
import type { LogLevel } from './config.js'

export type { Logger }

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { svc: 'coedit' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? process.stdout)
}
