/**
 * `coedit token`: prints an access token (a JWT) for clients of a server started with
 * --auth-secret (HS256) or --auth-public-key (ES256/RS256, sign with the matching
 * --private-key). Not the admin token of the operator verbs: that one is a shared key
 * given to `serve --admin-token`.
 */
import { helpColumn, helpRows, parseFlags, type FlagSpecs } from '../server/operator/args.js'
import { UsageError } from '../server/errors.js'
import { checkAuthSecret, signToken } from '../server/transport/auth.js'
import { parseDuration } from '../server/operator/duration.js'
import { confirm, processIO, writeOut, type CliIO } from './cli/io.js'
import { printable } from './cli/printable.js'

const FLAGS: FlagSpecs = {
  secret: { type: 'string', value: 'SECRET' },
  'private-key': { type: 'string', value: 'FILE' },
  room: { type: 'string', multiple: true, value: 'PATTERN' },
  'read-only': { type: 'boolean' },
  ttl: { type: 'string', value: 'DURATION' },
  sub: { type: 'string', value: 'USER' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
}

const ROWS: Array<[string, string]> = [
  ['--secret SECRET', 'the server\'s --auth-secret (HS256, at least 32 bytes); or set AUTH_SECRET'],
  ['--private-key FILE', 'PEM private key matching the server\'s --auth-public-key (EC P-256 → ES256, RSA → RS256)'],
  ['--room PATTERN', 'a room name, or a glob: * within one /-separated part, ** across parts (repeat for several)'],
  ['--read-only', 'the holder receives the document but cannot change it'],
  ['--ttl DURATION', 'lifetime, with a unit: 30m, 8h, 3600s, 7d (default 1h)'],
  ['--sub USER', 'the holder\'s user id (the JWT sub claim): coedit history shows who changed what by it'],
  ['--quiet, -q', 'no line on stderr saying what the token grants (stdout is only ever the token)'],
  ['--help, -h', 'show this help'],
]

const HELP = `Usage: coedit token (--secret SECRET | --private-key FILE) --room PATTERN [--room PATTERN ...] [--read-only] [--ttl 1h] [--sub USER]

Prints an access token (a JWT) for clients of a coedit server that requires tokens. This is
not the admin token of the other verbs (serve --admin-token).

${helpRows(ROWS, helpColumn(ROWS)).join('\n')}

Open the editor with the token in the fragment, which browsers never send to the
server: http://HOST:PORT/r/ROOM#token=TOKEN

Exit codes: 0 printed, 1 failed (key file missing or unusable), 2 bad usage.`

export async function token(argv: string[], io: CliIO = processIO()): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS)
  if (values.help) {
    await writeOut(io, `${HELP}\n`)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}": name rooms with --room`)
  const secret = (values.secret as string | undefined) ?? io.env.AUTH_SECRET
  const privateKeyFile = values['private-key'] as string | undefined
  if (!secret === !privateKeyFile) throw new UsageError('give exactly one of --secret (or AUTH_SECRET) and --private-key')
  if (secret) {
    try {
      checkAuthSecret(secret, values.secret !== undefined ? '--secret' : 'AUTH_SECRET')
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
  }
  const rooms = values.room as string[] | undefined
  if (!rooms || rooms.length === 0) throw new UsageError('--room is required (a name or a glob such as team/*)')
  let ttl: number
  try {
    ttl = parseDuration((values.ttl as string | undefined) ?? '1h')
  } catch (err) {
    throw new UsageError(`--ttl: ${(err as Error).message}`)
  }
  if (ttl < 1000) throw new UsageError('--ttl must be at least 1s')
  const access = values['read-only'] ? 'read' : 'write'
  const sub = values.sub as string | undefined
  const jwt = await signToken({ rooms, access, ttl, ...(sub !== undefined ? { sub } : {}), ...(privateKeyFile ? { privateKeyFile } : { secret }) })
  await writeOut(io, `${jwt}\n`)
  const expires = new Date(io.now() + ttl).toISOString().replace(/\.\d{3}Z$/, 'Z')
  confirm(io, values.quiet === true, `token for ${rooms.map((r) => printable(r)).join(', ')} (${access === 'read' ? 'read-only' : 'read and write'})${sub !== undefined ? ` as ${printable(sub)}` : ''}, expires ${expires}`)
  return 0
}
