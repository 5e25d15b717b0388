/**
 * What a verb may touch of the outside world: output streams, input, environment and the
 * clock. The `coedit` entry passes the real ones; tests pass captured ones.
 */
import { CoeditError, UsageError } from '../../server/errors.js'
import { printable, printableJson } from './printable.js'

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
  return writeOut(io, printableJson(value) + '\n')
}

/**
 * What a verb did, on stderr (stdout carries data: an export, a listing, --json), unless
 * --quiet. `text` is trusted text; names in it go through `printable` first.
 */
export function confirm(io: CliIO, quiet: boolean, text: string): void {
  if (!quiet) io.stderr.write(`${text}\n`)
}

/**
 * Runs a verb and maps its outcome to the exit code: 0 done, 1 failed, 2 bad usage.
 * An error is one line, its names made printable; only an unexpected one has a stack.
 */
export async function runVerb(name: string, run: (argv: string[], io: CliIO) => Promise<number>, argv: string[], io: CliIO): Promise<number> {
  try {
    return await run(argv, io)
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`coedit ${name}: ${printable(err.message)}\n`)
      return 2
    }
    if (err instanceof CoeditError) {
      io.stderr.write(`coedit ${name}: ${printable(err.message)}\n`)
      return 1
    }
    io.stderr.write(`coedit ${name}: unexpected error: ${String((err as Error)?.stack ?? err)}\n`)
    return 1
  }
}
