/**
 * What a verb may touch of the outside world: output streams, input, environment and the
 * clock. The `coedit` entry passes the real ones; tests pass captured ones.
 */
import { UsageError } from '../../server/config.js'
import { CoeditError } from '../../server/errors.js'

export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
  stdin: AsyncIterable<Uint8Array>
  env: NodeJS.ProcessEnv
  now: () => number
}

export const processIO = (): CliIO => ({
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  now: Date.now,
})

export function writeOut(io: CliIO, text: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    io.stdout.write(text, (err) => (err ? reject(err) : resolve()))
  })
}

export function printJson(io: CliIO, value: unknown): Promise<void> {
  return writeOut(io, JSON.stringify(value, null, 2) + '\n')
}

/** Runs a verb and maps its outcome to the exit code: 0 done, 1 failed, 2 bad usage. */
export async function runVerb(name: string, run: (argv: string[], io: CliIO) => Promise<number>, argv: string[], io: CliIO): Promise<number> {
  try {
    return await run(argv, io)
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`coedit ${name}: ${err.message}\nRun \`coedit ${name} --help\` for its options.\n`)
      return 2
    }
    if (err instanceof CoeditError) {
      io.stderr.write(`coedit ${name}: ${err.message}\n`)
      return 1
    }
    io.stderr.write(`coedit ${name}: unexpected error: ${String((err as Error)?.stack ?? err)}\n`)
    return 1
  }
}
