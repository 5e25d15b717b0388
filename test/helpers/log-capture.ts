/** A pino destination that keeps what it is given, for tests that read the server's log lines. */
import { Writable } from 'node:stream'
import { startServer, type CoeditServer, type StartOptions } from '../../server/index.js'
import { createLogger } from '../../server/log.js'

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

/** A server on port 0 (memory store, `options` on top) whose log lines from info up are kept in `logs`, parsed; closed after the test. */
export async function serverWithLogs(t: { after: (fn: () => Promise<void>) => void }, options: StartOptions = {}): Promise<{ server: CoeditServer; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const server = await startServer({ storage: 'memory', logger: createLogger('info', sink), ...options })
  t.after(() => server.close())
  return { server, logs }
}
