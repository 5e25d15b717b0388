/**
 * The operator verbs of `coedit`: rooms, export, import, delete, backup, restore-backup,
 * history, revert, diff, migrate. Each works on a data directory (`--data`) or on a running server (`--server`
 * `--admin-token`); see `coedit <verb> --help` and the README's CLI section. Data goes to
 * stdout, what a verb did to stderr (`--quiet` drops it); `-` is stdin or stdout wherever
 * a file is named.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { helpColumn, helpRows, parseFlags, type FlagSpecs, type ParsedFlags } from '../../server/operator/args.js'
import { EXPORT_FORMATS, IMPORT_FORMATS, parseTimeSpec, type ExportFormat, type ImportFormat } from '../../server/operator/doc-ops.js'
import { CoeditError, UsageError } from '../../server/errors.js'
import type { VersionInfo } from '../../server/persistence/store.js'
import { DIFF_FORMATS, type DiffFormat } from '../../server/operator/diff.js'
import { MIGRATE_SOURCES, openSource, type MigrateSource } from '../../server/operator/migrate.js'
import { DEFAULT_ACTIVITY_BUCKET } from '../../server/operator/history-log.js'
import { parseDuration } from '../../server/operator/duration.js'
import { confirm, printJson, writeOut, type CliIO } from './io.js'
import { printable } from './printable.js'
import { progress } from './progress.js'
import { offlineTarget, remoteTarget, verifyBackupFile, type Target } from './target.js'

/** Done, but not all of it: a backup that left unreadable rooms out, a migration that could not take every document. */
const EXIT_PARTIAL = 3

type Values = ParsedFlags['values']
type Rows = Array<[string, string]>

const COMMON_FLAGS: FlagSpecs = {
  data: { type: 'string', value: 'DIR' },
  server: { type: 'string', value: 'URL' },
  'admin-token': { type: 'string', value: 'TOKEN' },
  // The first name of --admin-token, kept because scripts use it.
  token: { type: 'string', value: 'TOKEN' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
}

const WHERE_ROWS: Rows = [
  ['--data DIR', 'a data directory no server is using (env DATA_DIR, default ./data)'],
  ['--server URL', 'a running server: http://HOST:PORT or https://... (env COEDIT_SERVER)'],
  ['--admin-token TOKEN', 'the token that server was started with, serve --admin-token (env COEDIT_TOKEN); --token TOKEN is the same'],
]
const OUTPUT_ROWS: Rows = [
  ['--json', 'the result as JSON on stdout'],
  ['--quiet, -q', 'no confirmation on stderr (errors are still printed)'],
  ['--help, -h', 'show this help'],
]
const EXIT_CODES = 'Exit codes: 0 done, 1 failed (the README lists the causes), 2 bad usage: nothing was attempted.'

export interface Verb {
  summary: string
  help: string
  run(argv: string[], io: CliIO): Promise<number>
}

interface VerbSpec {
  summary: string
  /** After `Usage: coedit `. */
  usage: string
  about: string
  options?: Rows
  flags?: FlagSpecs
  /** Names of the arguments, in order (`ROOM`, `FILE`). */
  args: string[]
  act(a: { values: Values; positionals: string[]; io: CliIO; quiet: boolean }): Promise<number>
}

/** A verb: its flags parsed into coedit's errors, --help in aligned columns, its arguments counted. */
function verb(spec: VerbSpec): Verb {
  const flags = { ...COMMON_FLAGS, ...spec.flags }
  const options = spec.options ?? []
  const column = helpColumn([...options, ...WHERE_ROWS, ...OUTPUT_ROWS])
  const help = [
    `Usage: coedit ${spec.usage}`,
    '',
    spec.about,
    ...(options.length > 0 ? ['', 'Options:', ...helpRows(options, column)] : []),
    '',
    'Where:',
    ...helpRows(WHERE_ROWS, column),
    'Output:',
    ...helpRows(OUTPUT_ROWS, column),
    '',
    EXIT_CODES,
  ].join('\n')
  return {
    summary: spec.summary,
    help,
    async run(argv, io) {
      const { values, positionals } = parseFlags(argv, flags)
      if (values.help) {
        await writeOut(io, `${help}\n`)
        return 0
      }
      if (positionals.length > spec.args.length) throw new UsageError(`unexpected argument "${positionals[spec.args.length]}" (usage: coedit ${spec.usage})`)
      if (positionals.length < spec.args.length) {
        throw new UsageError(`expected ${spec.args.length} argument${spec.args.length > 1 ? 's' : ''} (${spec.args.join(' ')}), got ${positionals.length}`)
      }
      return spec.act({ values, positionals, io, quiet: values.quiet === true })
    },
  }
}

function adminToken(values: Values): { token: string; flag: string } | undefined {
  const long = values['admin-token'] as string | undefined
  const short = values.token as string | undefined
  if (long !== undefined && short !== undefined && long !== short) throw new UsageError('--admin-token and --token are one option given two values: give one')
  if (long !== undefined) return { token: long, flag: '--admin-token' }
  if (short !== undefined) return { token: short, flag: '--token' }
  return undefined
}

/** A URL the admin API can be reached at; `localhost:1234` is bad usage, with the fix. */
function serverUrl(text: string, source: string): string {
  if (/^(https?|wss?):\/\//i.test(text) && URL.canParse(text)) return text
  if (!text.includes('://') && URL.canParse(`http://${text}`)) throw new UsageError(`${source}: "${text}" has no scheme: did you mean http://${text}?`)
  throw new UsageError(`${source}: "${text}" is not an http(s) URL (example: http://localhost:1234)`)
}

function target(values: Values, io: CliIO): Target {
  const data = values.data as string | undefined
  const flagServer = values.server as string | undefined
  if (data !== undefined && flagServer !== undefined) throw new UsageError('give either --data or --server, not both')
  const given = adminToken(values)
  const server = flagServer ?? (data === undefined && io.env.COEDIT_SERVER ? io.env.COEDIT_SERVER : undefined)
  if (server !== undefined) {
    const url = serverUrl(server, flagServer !== undefined ? '--server' : 'COEDIT_SERVER')
    const token = given?.token ?? io.env.COEDIT_TOKEN
    if (!token) throw new UsageError('--server needs --admin-token TOKEN (or COEDIT_TOKEN): the token the server was started with')
    return remoteTarget(url, token)
  }
  if (given) throw new UsageError(`${given.flag} goes with --server URL`)
  return offlineTarget(data ?? (io.env.DATA_DIR || './data'))
}

/** Runs `fn` on the target and closes it whatever happens. The target is checked before anything is read. */
async function withTarget<T>(values: Values, io: CliIO, fn: (t: Target) => Promise<T>): Promise<T> {
  const t = target(values, io)
  try {
    return await fn(t)
  } finally {
    await t.close()
  }
}

function choice<T extends string>(value: unknown, allowed: readonly T[], what: string): T | undefined {
  if (value === undefined) return undefined
  if (!(allowed as readonly string[]).includes(value as string)) throw new UsageError(`${what} must be one of ${allowed.join(', ')}, not "${String(value)}"`)
  return value as T
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'))
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(1)} GiB`
}

/** Cells must already be printable: widths are counted on what the terminal shows. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n'
}

const fileLabel = (file: string, std: 'stdin' | 'stdout'): string => (file === '-' ? std : printable(file))

async function readInput(file: string, io: CliIO): Promise<Uint8Array> {
  if (file === '-') return new Uint8Array(Buffer.concat(await collect(io.stdin)))
  try {
    return new Uint8Array(await readFile(file))
  } catch (err) {
    throw fileError(err, file, 'read')
  }
}

/** A file that is missing or unreadable is a failure (exit 1), like a file with bad content. */
function fileError(err: unknown, file: string, what: 'read' | 'write'): unknown {
  const code = (err as NodeJS.ErrnoException).code
  if (code === undefined) return err
  if (code === 'ENOENT' && what === 'read') return new CoeditError('FILE_NOT_FOUND', `no file ${file}`)
  return new CoeditError(what === 'read' ? 'FILE_UNREADABLE' : 'FILE_UNWRITABLE', `cannot ${what} ${file}: ${code}`)
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = []
  for await (const chunk of stream) parts.push(chunk)
  return parts
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'coedit-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * A hint for input that failed as a Yjs update: the common mistake is piping text or
 * JSON into `import ROOM -`, where no file name tells the format.
 */
function formatHint(body: Uint8Array): string | undefined {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body)
  } catch {
    return undefined
  }
  if (/[\u0000-\u0008\u000e-\u001f]/.test(text)) return undefined
  try {
    const value: unknown = JSON.parse(text)
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return 'it looks like JSON: add --format json'
  } catch {
    // Not JSON: text, then.
  }
  return 'it looks like text: add --format text'
}

export const rooms = verb({
  summary: 'list rooms with their size, stored updates and last change',
  usage: 'rooms [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: 'Lists every stored room: its size on disk, the updates not yet compacted, and when it last changed.',
  args: [],
  async act({ values, io, quiet }) {
    const list = await withTarget(values, io, (t) => t.rooms())
    if (values.json) await printJson(io, list)
    else if (list.length > 0) {
      await writeOut(io, table([
        ['ROOM', 'SIZE', 'UPDATES', 'LAST CHANGE'],
        ...list.map((r) => [printable(r.name), formatBytes(r.bytes), String(r.updates), iso(r.updatedAt)]),
      ]))
    }
    confirm(io, quiet, list.length === 0 ? 'no rooms' : plural(list.length, 'room'))
    return 0
  },
})

export const exportVerb = verb({
  summary: 'write a room as text, JSON or a binary Yjs update',
  usage: 'export ROOM [--format text|json|update] [--out FILE|-] [--name TEXT] [--at VERSION|TIME]',
  about: 'Writes ROOM to stdout, or to FILE.',
  options: [
    ['--format text', 'the shared text (the default; --name picks the Y.Text, default "text")'],
    ['--format json', 'the whole document as JSON'],
    ['--format update', 'the binary Yjs state (Y.encodeStateAsUpdate): import it back losslessly'],
    ['--out FILE', 'write to FILE instead of stdout (- is stdout)'],
    ['--name TEXT', 'the Y.Text --format text exports (default "text")'],
    ['--at VERSION|TIME', 'the room as of a version of coedit history (an id), or as of a time (2026-11-22T10:00:00.250Z, 90s): within the exact window (serve --history-exact, default 24h) exactly every update stored at or before it; older, the newest version at or before it'],
  ],
  flags: { format: { type: 'string', value: 'text|json|update' }, out: { type: 'string', value: 'FILE' }, name: { type: 'string', value: 'TEXT' }, at: { type: 'string', value: 'VERSION|TIME' } },
  args: ['ROOM'],
  async act({ values, positionals, io, quiet }) {
    const room = positionals[0]!
    const format = choice<ExportFormat>(values.format, EXPORT_FORMATS, '--format') ?? 'text'
    const out = values.out as string | undefined
    const toStdout = out === undefined || out === '-'
    if (format === 'update' && toStdout && io.stdout.isTTY) throw new UsageError('--format update is binary: give --out FILE or redirect stdout')
    if (toStdout && values.json) throw new UsageError('--json needs --out FILE: without it, stdout is the export itself')
    const at = values.at as string | undefined
    if (at !== undefined) checkVersionSpec(at, io)
    const body = await withTarget(values, io, (t) => t.export(room, format, values.name as string | undefined, at))
    if (toStdout) await writeOut(io, body)
    else {
      await writeFile(out, body).catch((err: unknown) => { throw fileError(err, out, 'write') })
      if (values.json) await printJson(io, { room, format, file: out, bytes: body.length })
    }
    confirm(io, quiet, `${printable(room)}: exported ${format}${at === undefined ? '' : ` as of ${printable(at)}`} (${formatBytes(body.length)}) to ${toStdout ? 'stdout' : printable(out)}`)
    return 0
  },
})

export const deleteVerb = verb({
  summary: 'delete a room for good: its content, versions and history',
  usage: 'delete ROOM --yes [--tombstone] [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: `Deletes ROOM for good: its stored updates, compacted state, versions and history log
(coedit backup first to keep a copy). On a running server its connections are closed with
4410 (the stock y-websocket provider stops), and a client joining afterwards starts an empty
room. A client that still holds the old document (offline edits, an open page that
reconnects) sends it back when it connects again, unless the room was deleted with
--tombstone: the server then refuses the old content (close 4410 DELETED_CONTENT).`,
  options: [
    ['--yes', 'required: a delete cannot be undone'],
    ['--tombstone', 'keep the deleted document\'s client IDs and refuse any update that carries its content'],
  ],
  flags: { yes: { type: 'boolean' }, tombstone: { type: 'boolean' } },
  args: ['ROOM'],
  async act({ values, positionals, io, quiet }) {
    const room = positionals[0]!
    // Not a prompt: the same on a terminal and in a script, as restore-backup's --force.
    if (values.yes !== true) throw new UsageError(`delete removes ${printable(room)} and its history for good: add --yes (coedit backup first to keep a copy)`)
    const tombstone = values.tombstone === true
    const result = await withTarget(values, io, (t) => t.delete(room, tombstone))
    if (values.json) await printJson(io, { ...result, deleted: true })
    const closed = result.connections === undefined ? '' : ` (${plural(result.connections, 'connection')} closed)`
    confirm(io, quiet, `${printable(result.room)}: deleted${tombstone ? ', its old content refused from now on (tombstone)' : ''}${closed}`)
    return 0
  },
})

function guessFormat(file: string): ImportFormat {
  if (/\.json$/i.test(file)) return 'json'
  if (/\.(txt|text|md)$/i.test(file)) return 'text'
  return 'update'
}

export const importVerb = verb({
  summary: 'merge a Yjs update, text or JSON file into a room',
  usage: 'import ROOM FILE|- [--format update|text|json] [--name TEXT]',
  about: `Merges FILE (- is stdin) into ROOM, creating it, as a new change: connected clients see it at
once. A file that is not what --format says changes nothing.`,
  options: [
    ['--format update', 'a binary Yjs update (the default, unless FILE ends in .json, .txt or .md)'],
    ['--format text', 'replaces the shared text (--name, default "text") with FILE\'s text'],
    ['--format json', 'sets each root of a JSON object as written by export --format json'],
    ['--name TEXT', 'the Y.Text --format text replaces (default "text")'],
  ],
  flags: { format: { type: 'string', value: 'update|text|json' }, name: { type: 'string', value: 'TEXT' } },
  args: ['ROOM', 'FILE'],
  async act({ values, positionals, io, quiet }) {
    const [room, file] = positionals as [string, string]
    const format = choice<ImportFormat>(values.format, IMPORT_FORMATS, '--format') ?? guessFormat(file)
    const result = await withTarget(values, io, async (t) => {
      const body = await readInput(file, io)
      try {
        return await t.import(room, body, format, values.name as string | undefined)
      } catch (err) {
        const hint = format === 'update' && err instanceof CoeditError && err.code === 'BAD_FILE' ? formatHint(body) : undefined
        if (hint) throw new CoeditError('BAD_FILE', `${fileLabel(file, 'stdin')} is not a Yjs update (the default format${file === '-' ? ' for stdin' : ''}): ${hint}`, { cause: err })
        throw err
      }
    })
    if (values.json) await printJson(io, { ...result, format })
    confirm(io, quiet, result.bytes === 0
      ? `${printable(room)}: already up to date, nothing imported`
      : `${printable(room)}: imported ${format} from ${fileLabel(file, 'stdin')} (${formatBytes(result.bytes)} update${result.created ? ', new room' : ''})`)
    return 0
  },
})

export const backup = verb({
  summary: 'write every room to one file, consistent as of one moment (live servers keep serving)',
  usage: 'backup --out FILE|- [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: `Writes every room, with its history, as of one moment to FILE (- is stdout). The output
appears only once it is complete and checked (a checksum covers it); an existing FILE is
replaced. A room whose stored data cannot be read does not stop the backup: every other
room is written, the file names the room it lacks, and stderr says which and why.
Exit codes: 0 every room backed up, 3 backed up but some rooms could not be read (named
on stderr; the file holds every other room), 1 failed (no file), 2 bad usage.`,
  options: [['--out FILE', 'where the backup goes; - is stdout (through a temporary file, so that it is checked first)']],
  flags: { out: { type: 'string', value: 'FILE' } },
  args: [],
  async act({ values, io, quiet }) {
    const out = values.out as string | undefined
    if (!out) throw new UsageError('backup needs --out FILE (or --out - for stdout)')
    if (out === '-' && io.stdout.isTTY) throw new UsageError('a backup is binary: redirect stdout, or give --out FILE')
    if (out === '-' && values.json) throw new UsageError('--json and --out - both want stdout: give --out FILE')
    const result = await withTarget(values, io, async (t) => {
      if (out !== '-') return t.backup(out, progress(io, 'backup'))
      return withTempDir(async (dir) => {
        const written = await t.backup(join(dir, 'backup.coedit'), progress(io, 'backup'))
        for await (const chunk of createReadStream(written.file)) await writeOut(io, chunk as Buffer)
        return { ...written, file: '-' }
      })
    })
    for (const room of result.unreadable) io.stderr.write(`coedit backup: room "${printable(room.name)}" could not be read and is not in the backup: ${printable(room.reason)}\n`)
    if (values.json) await printJson(io, result)
    const left = result.unreadable.length > 0 ? `; ${plural(result.unreadable.length, 'unreadable room')} left out` : ''
    confirm(io, quiet, `backed up ${plural(result.rooms, 'room')} to ${fileLabel(result.file, 'stdout')} (${formatBytes(result.bytes)})${left}`)
    return result.unreadable.length > 0 ? EXIT_PARTIAL : 0
  },
})

export const restoreBackup = verb({
  summary: 'restore a backup file into an empty data directory (or a running server)',
  usage: 'restore-backup FILE|- [--force] [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: `Checks FILE (- is stdin) in full first (a truncated or corrupt file changes nothing), then
writes it and reads every room back to verify it.`,
  options: [
    ['--force', 'with --data: replace the rooms the backup holds and keep the others (the directory must otherwise be empty or missing)\nwith --server: merge the backup into its rooms (otherwise it must have none); connected clients see the restored content at once'],
  ],
  flags: { force: { type: 'boolean' } },
  args: ['FILE'],
  async act({ values, positionals, io, quiet }) {
    const file = positionals[0]!
    const restore = (path: string): Promise<{ rooms: number; verified: number; expected: number }> => withTarget(values, io, async (t) => {
      const checked = await verifyBackupFile(path)
      for (const room of checked.unreadable) io.stderr.write(`coedit restore-backup: room "${printable(room.name)}" was unreadable when the backup was taken and is not in it: ${printable(room.reason)}\n`)
      const result = await t.restore(path, values.force === true, progress(io, 'restore'))
      return { ...result, expected: checked.rooms }
    })
    // A backup is read twice (checked, then restored), so stdin is kept in a temporary file.
    const { expected, ...result } = file !== '-' ? await restore(file) : await withTempDir(async (dir) => {
      const spooled = join(dir, 'stdin.coedit')
      await pipeline(Readable.from(io.stdin), createWriteStream(spooled))
      return restore(spooled)
    })
    if (values.json) await printJson(io, { file, ...result })
    confirm(io, quiet, `restored ${plural(result.rooms, 'room')} from ${fileLabel(file, 'stdin')}; ${result.verified} verified`)
    return expected === result.verified ? 0 : 1
  },
})

export const history = verb({
  summary: 'list the stored versions of a room and who changed it when',
  usage: 'history ROOM [--activity] [--bucket DURATION] [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: `Lists the versions the server keeps of ROOM (see serve --history-interval and
--history-retention), oldest first, then its activity within the exact window (serve
--history-exact): per interval, how many updates, their bytes and which users. Revert to a
version with coedit revert ROOM --to ID, or to any instant of the window with --to TIME.`,
  options: [
    ['--activity', 'only the activity (with --json: the activity list, not the versions)'],
    ['--bucket DURATION', 'length of an activity interval (default 1m; examples: 10s, 1h)'],
  ],
  flags: { activity: { type: 'boolean' }, bucket: { type: 'string', value: 'DURATION' } },
  args: ['ROOM'],
  async act({ values, positionals, io, quiet }) {
    const room = positionals[0]!
    const bucket = values.bucket === undefined ? DEFAULT_ACTIVITY_BUCKET : bucketOf(values.bucket as string)
    const [versions, act] = await withTarget(values, io, async (t) => [await t.history(room), await t.activity(room, bucket)] as const)
    if (values.json) {
      await printJson(io, values.activity ? act.activity : versions)
    } else {
      let out = ''
      if (!values.activity && versions.length > 0) {
        out += table([['VERSION', 'TIME', 'SIZE', ''], ...versions.map((v: VersionInfo) => [String(v.id), iso(v.at), formatBytes(v.bytes), v.pinned ? 'before a revert' : ''])])
        out += '\n'
      }
      out += `exact to the millisecond ${act.exactSince === undefined ? 'since the room was created' : `since ${isoMs(act.exactSince)}`}\n`
      if (act.activity.length > 0) {
        out += table([['FROM', 'UPDATES', 'BYTES', 'USERS'], ...act.activity.map((b) => [iso(b.from), String(b.updates), formatBytes(b.bytes), b.users.map((u) => printable(u)).join(', ') || '-'])])
      }
      await writeOut(io, out)
    }
    confirm(io, quiet, `${printable(room)}: ${versions.length === 0 ? 'no versions recorded yet' : plural(versions.length, 'version')}`)
    return 0
  },
})

const isoMs = (ms: number): string => new Date(ms).toISOString()

function bucketOf(text: string): number {
  let ms: number
  try {
    ms = parseDuration(text)
  } catch (err) {
    throw new UsageError(`--bucket: ${(err as Error).message}`)
  }
  if (ms < 1000) throw new UsageError(`--bucket: "${text}" is shorter than 1s (examples: 10s, 1m, 1h)`)
  return ms
}

export const revert = verb({
  summary: 'bring a room back to a version or a time, as a new change',
  usage: 'revert ROOM --to VERSION|TIME [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: `Brings ROOM's content back to a version (an id from coedit history) or to a time: ISO
8601 (2026-11-22T10:00:00.250Z) or a time ago (5s, 10m, 2h, 3d). Within the exact window
(serve --history-exact, default 24h) that is exactly every update stored at or before the
time and none after; older, the newest version at or before it.
The revert is a new change on top of the current state: connected clients see it at once,
and a client that was offline does not bring the removed content back. The state before
the revert is kept as a version, so a revert can be reverted.`,
  options: [['--to VERSION|TIME', 'the version id, or the time, to go back to']],
  flags: { to: { type: 'string', value: 'VERSION|TIME' } },
  args: ['ROOM'],
  async act({ values, positionals, io, quiet }) {
    const to = values.to as string | undefined
    if (!to) throw new UsageError('revert needs --to VERSION|TIME')
    checkVersionSpec(to, io)
    const result = await withTarget(values, io, (t) => t.revert(positionals[0]!, to))
    if (values.json) await printJson(io, result)
    const what = result.exact ? `${isoMs(result.version.at)} (exact)` : `version ${result.version.id} (${iso(result.version.at)})`
    confirm(io, quiet, result.bytes === 0
      ? `${printable(result.room)}: already as of ${what}, nothing changed`
      : `${printable(result.room)}: reverted to ${what}`)
    return 0
  },
})

/** A malformed time is bad usage (exit 2), not a failure of the operation. */
function checkVersionSpec(spec: string, io: CliIO): void {
  if (/^\s*\d+\s*$/.test(spec)) return
  try {
    parseTimeSpec(spec, io.now())
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

export const diff = verb({
  summary: 'show what changed in a room between two moments',
  usage: 'diff ROOM --from VERSION|TIME [--to VERSION|TIME] [--name TEXT] [--format text|json]',
  about: `Prints a unified diff of the shared text (--name, default "text") as of --from and as of
--to (default: now). Times are exact within the window of serve --history-exact.`,
  options: [
    ['--from VERSION|TIME', 'the earlier moment: a version id, an ISO 8601 time or a time ago (90s, 2h)'],
    ['--to VERSION|TIME', 'the later moment (default: now)'],
    ['--name TEXT', 'the Y.Text to compare (default "text")'],
    ['--format text', 'a unified diff (the default); nothing when the text did not change'],
    ['--format json', 'every root that changed, before and after (any type), as JSON'],
  ],
  flags: { from: { type: 'string', value: 'VERSION|TIME' }, to: { type: 'string', value: 'VERSION|TIME' }, name: { type: 'string', value: 'TEXT' }, format: { type: 'string', value: 'text|json' } },
  args: ['ROOM'],
  async act({ values, positionals, io, quiet }) {
    const room = positionals[0]!
    const from = values.from as string | undefined
    if (!from) throw new UsageError('diff needs --from VERSION|TIME')
    checkVersionSpec(from, io)
    const to = values.to as string | undefined
    if (to !== undefined) checkVersionSpec(to, io)
    const format = choice<DiffFormat>(values.format, DIFF_FORMATS, '--format') ?? 'text'
    const body = await withTarget(values, io, (t) => t.diff(room, from, to, format, values.name as string | undefined))
    await writeOut(io, body)
    confirm(io, quiet, `${printable(room)}: ${body.length === 0 ? 'no difference' : `difference from ${printable(from)} to ${printable(to ?? 'now')}`}`)
    return 0
  },
})

interface MigratedRoom {
  /** The document's name in the source (a y-leveldb key, a SQLite row, a file name). */
  source: string
  room: string | undefined
  /** Bytes of the document's state in the source. */
  bytes: number
  /** Bytes of the update that was (or, with --dry-run, would be) merged; 0: already there. */
  imported: number
  created: boolean
  ok: boolean
  error?: string
}

export const migrate = verb({
  summary: 'bring documents over from y-websocket-server (y-leveldb), Hocuspocus (SQLite) or update files',
  usage: 'migrate --from y-leveldb|hocuspocus-sqlite|files PATH [--dry-run] [--data DIR | --server URL --admin-token TOKEN] [--json]',
  about: `Reads every document of PATH and merges it into the room a client reaches it by: a
y-websocket-server room of the URL /team%2Fnotes becomes room team/notes, as the same URL
reaches it on coedit; a Hocuspocus document keeps its name; an update file is named after
its room, percent-encoded, with an optional .bin, .yjs or .update extension. Merging is a
CRDT merge: running it again changes nothing, and rooms that already exist keep their
content and gain what they lack. Stop the old server first (y-leveldb holds a lock).`,
  options: [
    ['--from y-leveldb', 'PATH is the data directory of y-websocket-server (YPERSISTENCE) or any y-leveldb store'],
    ['--from hocuspocus-sqlite', 'PATH is the database file of @hocuspocus/extension-sqlite'],
    ['--from files', 'PATH is a folder of Yjs update files, one per room'],
    ['--dry-run', 'read the source and list what would be migrated; change nothing'],
  ],
  flags: { from: { type: 'string', value: 'KIND' }, 'dry-run': { type: 'boolean' } },
  args: ['PATH'],
  async act({ values, positionals, io, quiet }) {
    const kind = choice<MigrateSource>(values.from, MIGRATE_SOURCES, '--from')
    if (!kind) throw new UsageError(`migrate needs --from ${MIGRATE_SOURCES.join('|')}`)
    const dryRun = values['dry-run'] === true
    const source = await openSource(kind, positionals[0]!)
    const rows: MigratedRoom[] = []
    const bar = progress(io, 'migrate')
    try {
      const run = async (t: Target | undefined): Promise<void> => {
        bar.start(source.count)
        for await (const doc of source.documents()) {
          bar.tick(doc.source)
          if (!doc.ok) {
            rows.push({ source: doc.source, room: undefined, bytes: 0, imported: 0, created: false, ok: false, error: doc.error })
            continue
          }
          if (!t) {
            rows.push({ source: doc.source, room: doc.room, bytes: doc.update.length, imported: doc.update.length, created: false, ok: true })
            continue
          }
          try {
            const result = await t.import(doc.room, doc.update, 'update')
            rows.push({ source: doc.source, room: doc.room, bytes: doc.update.length, imported: result.bytes, created: result.created, ok: true })
          } catch (err) {
            rows.push({ source: doc.source, room: doc.room, bytes: doc.update.length, imported: 0, created: false, ok: false, error: (err as Error).message })
          }
        }
        bar.stop()
      }
      if (dryRun) await run(undefined)
      else await withTarget(values, io, run)
    } finally {
      bar.stop()
      await source.close()
    }
    const failed = rows.filter((r) => !r.ok)
    if (values.json) await printJson(io, rows)
    else if (rows.length > 0) {
      await writeOut(io, table([
        ['SOURCE', 'ROOM', 'SIZE', dryRun ? 'WOULD' : 'RESULT'],
        ...rows.map((r) => [
          printable(r.source), r.room === undefined ? '-' : printable(r.room), formatBytes(r.bytes),
          !r.ok ? `failed: ${printable(r.error ?? '')}` : dryRun ? 'import' : r.imported === 0 ? 'already there' : r.created ? 'new room' : `merged ${formatBytes(r.imported)}`,
        ]),
      ]))
    }
    const changed = rows.filter((r) => r.ok && r.imported > 0).length
    confirm(io, quiet, `${dryRun ? 'would migrate' : 'migrated'} ${plural(rows.length - failed.length, 'document')} from ${printable(positionals[0]!)}`
      + (dryRun ? '' : ` (${changed} changed, ${rows.length - failed.length - changed} already there)`)
      + (failed.length > 0 ? `; ${failed.length} could not be migrated` : ''))
    return failed.length > 0 ? EXIT_PARTIAL : 0
  },
})

export const OPERATOR_VERBS: Record<string, Verb> = {
  rooms,
  export: exportVerb,
  import: importVerb,
  delete: deleteVerb,
  backup,
  'restore-backup': restoreBackup,
  history,
  revert,
  diff,
  migrate,
}
