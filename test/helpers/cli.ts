/**
 * Runs an operator verb of `coedit` (or `token`) in this process with captured output (fast: no tsx
 * start-up per call). Tests of exit codes as a process sees them use `runCli` instead.
 */
import { PassThrough } from 'node:stream'
import { OPERATOR_VERBS } from '../../scripts/cli/verbs.js'
import { runVerb, type CliIO } from '../../scripts/cli/io.js'
import { token } from '../../scripts/token.js'

export interface CliResult {
  code: number
  stdout: Buffer
  stderr: string
  /** stdout as text */
  out: string
}

function capture(): { stream: PassThrough; read: () => Buffer } {
  const stream = new PassThrough()
  const parts: Buffer[] = []
  stream.on('data', (d: Buffer) => parts.push(d))
  return { stream, read: () => Buffer.concat(parts) }
}

export async function cli(args: string[], options: { env?: Record<string, string>; stdin?: Uint8Array; now?: () => number } = {}): Promise<CliResult> {
  const [verb, ...rest] = args
  const command = verb === 'token' ? { run: token } : OPERATOR_VERBS[verb!]
  if (!command) throw new Error(`no verb ${verb}`)
  const out = capture()
  const err = capture()
  const io: CliIO = {
    stdout: out.stream,
    stderr: err.stream,
    stdin: (async function* () {
      if (options.stdin) yield options.stdin
    })(),
    // Only what the test gives: the developer's own DATA_DIR or COEDIT_* must not leak in.
    env: options.env ?? {},
    now: options.now ?? Date.now,
  }
  const code = await runVerb(verb!, (a, i) => command.run(a, i), rest, io)
  await new Promise((resolve) => setImmediate(resolve))
  const stdout = out.read()
  return { code, stdout, stderr: err.read().toString(), out: stdout.toString() }
}
