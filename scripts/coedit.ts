#!/usr/bin/env node
/**
 * The `coedit` command. Exit codes: 0 done, 1 failed, 2 bad usage.
 */
import { UsageError } from '../server/config.js'
import { CoeditError } from '../server/errors.js'
import { serve } from './serve.js'
import { token } from './token.js'
import { OPERATOR_VERBS } from './cli/verbs.js'
import { processIO, runVerb } from './cli/io.js'
import { packageVersion } from '../server/paths.js'

const VERBS: Record<string, { run: (argv: string[]) => Promise<number>; summary: string }> = {
  serve: { run: serve, summary: 'run the collaboration server (see coedit serve --help)' },
  token: { run: token, summary: 'print an access token for a server started with --auth-secret or --auth-public-key' },
  ...Object.fromEntries(Object.entries(OPERATOR_VERBS).map(([name, v]) => [name, { run: (argv: string[]) => runVerb(name, (a, io) => v.run(a, io), argv, processIO()), summary: v.summary }])),
}

function usage(): string {
  return [
    'Usage: coedit <command> [options]',
    '',
    'Commands:',
    ...Object.entries(VERBS).map(([name, v]) => `  ${name.padEnd(16)} ${v.summary}`),
    '',
    'Run `coedit <command> --help` for the options of a command; `coedit --version` prints the version.',
  ].join('\n')
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    console.log(usage())
    return verb === undefined ? 2 : 0
  }
  if (verb === '--version') {
    console.log(packageVersion())
    return 0
  }
  const command = VERBS[verb]
  if (!command) {
    console.error(`coedit: unknown command "${verb}"\n\n${usage()}`)
    return 2
  }
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`coedit ${verb}: ${err.message}`)
      return 2
    }
    if (err instanceof CoeditError) {
      console.error(`coedit ${verb}: ${err.message}`)
      return 1
    }
    console.error(`coedit ${verb}: unexpected error:`, err)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
