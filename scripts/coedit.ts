#!/usr/bin/env node
/**
 * The `coedit` command. Exit codes: 0 done, 1 failed, 2 bad usage (the README's table
 * lists the causes). Bare `coedit` is bad usage: the usage goes to stderr; `coedit --help`
 * asked for it: stdout, exit 0.
 */
import { closest, helpRows } from '../server/operator/args.js'
import { serve } from './serve.js'
import { token } from './token.js'
import { OPERATOR_VERBS } from './cli/verbs.js'
import { processIO, runVerb, type CliIO } from './cli/io.js'
import { printable } from './cli/printable.js'
import { packageVersion } from '../server/http/paths.js'

const VERBS: Record<string, { run: (argv: string[], io: CliIO) => Promise<number>; summary: string }> = {
  serve: { run: (argv) => serve(argv), summary: 'run the collaboration server (see coedit serve --help)' },
  token: { run: token, summary: 'print an access token (JWT) for clients of a server started with --auth-secret or --auth-public-key' },
  ...Object.fromEntries(Object.entries(OPERATOR_VERBS).map(([name, v]) => [name, { run: (argv: string[], io: CliIO) => v.run(argv, io), summary: v.summary }])),
}

function usage(): string {
  return [
    'Usage: coedit <command> [options]',
    '',
    'Commands:',
    ...helpRows(Object.entries(VERBS).map(([name, v]) => [name, v.summary])),
    '',
    'Run `coedit <command> --help` for the options of a command; `coedit --version` prints the version.',
    'Durations take a unit (500ms, 30s, 2m, 1h, 7d). Exit codes: 0 done, 1 failed, 2 bad usage.',
  ].join('\n')
}

async function main(argv: string[], io: CliIO): Promise<number> {
  const [verb, ...rest] = argv
  if (verb === '--help' || verb === '-h' || verb === 'help') {
    io.stdout.write(`${usage()}\n`)
    return 0
  }
  if (verb === undefined) {
    io.stderr.write(`${usage()}\n`)
    return 2
  }
  if (verb === '--version') {
    io.stdout.write(`${packageVersion()}\n`)
    return 0
  }
  const command = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined
  if (!command) {
    const what = verb.startsWith('-') ? 'option' : 'command'
    const suggestion = closest(verb.replace(/^-+/, ''), Object.keys(VERBS))
    io.stderr.write(`coedit: unknown ${what} "${printable(verb)}"${suggestion ? `: did you mean ${suggestion}?` : ' (coedit --help lists the commands)'}\n`)
    return 2
  }
  return runVerb(verb, command.run, rest, io)
}

process.exitCode = await main(process.argv.slice(2), processIO())
