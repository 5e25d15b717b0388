/**
 * `coedit token`: prints an access token for a server started with --auth-secret
 * (HS256) or --auth-public-key (ES256/RS256, sign with the matching --private-key).
 */
import { parseArgs } from 'node:util'
import { signToken } from '../server/auth.js'
import { UsageError, parseDuration } from '../server/config.js'

const HELP = `Usage: coedit token (--secret SECRET | --private-key FILE) --room PATTERN [--room PATTERN ...] [--read-only] [--ttl 1h] [--sub USER]

Prints a JWT for a coedit server that requires tokens.

  --secret SECRET      the server's --auth-secret (HS256); or set AUTH_SECRET
  --private-key FILE   PEM private key matching the server's --auth-public-key
                       (EC P-256 → ES256, RSA → RS256)
  --room PATTERN       a room name, or a glob: * within one /-separated part,
                       ** across parts (repeat for several)
  --read-only          the holder receives the document but cannot change it
  --ttl DURATION       lifetime (30m, 1h, 24h; default 1h)
  --sub USER           the holder's user id (the JWT sub claim): coedit history shows
                       who changed what by it

Open the editor with the token in the fragment, which browsers never send to the
server: http://HOST:PORT/r/ROOM#token=TOKEN`

export async function token(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        secret: { type: 'string' },
        'private-key': { type: 'string' },
        room: { type: 'string', multiple: true },
        'read-only': { type: 'boolean' },
        ttl: { type: 'string' },
        sub: { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!)
  }
  if (values.help) {
    console.log(HELP)
    return 0
  }
  const secret = values.secret ?? process.env.AUTH_SECRET
  const privateKeyFile = values['private-key']
  if (!secret === !privateKeyFile) throw new UsageError('give exactly one of --secret (or AUTH_SECRET) and --private-key')
  if (!values.room || values.room.length === 0) throw new UsageError('--room is required (a name or a glob such as team/*)')
  let ttl: number
  try {
    ttl = parseDuration(values.ttl ?? '1h')
  } catch (err) {
    throw new UsageError(`--ttl: ${(err as Error).message}`)
  }
  if (ttl < 1000) throw new UsageError('--ttl must be at least 1s')
  const jwt = await signToken({
    rooms: values.room,
    access: values['read-only'] ? 'read' : 'write',
    ttl,
    ...(values.sub !== undefined ? { sub: values.sub } : {}),
    ...(privateKeyFile ? { privateKeyFile } : { secret }),
  })
  console.log(jwt)
  return 0
}
