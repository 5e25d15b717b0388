/** A pino destination that keeps what it is given, for tests that read the server's log lines. */
import { Writable } from 'node:stream'

export interface LogCapture {
  stream: Writable
  /** Everything written, as text. */
  raw(): string
  /** Every line, parsed. */
  lines(): Array<Record<string, unknown>>
  /** The lines whose `event` is `name`. */
  events(name: string): Array<Record<string, unknown>>
}

export function captureLog(): LogCapture {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString()
      done()
    },
  })
  const lines = (): Array<Record<string, unknown>> => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
  return { stream, raw: () => text, lines, events: (name) => lines().filter((l) => l.event === name) }
}
