/**
 * The operator verbs of `coedit`: rooms, export, import, backup, restore-backup, history,
 * revert. Each works on a data directory (`--data`) or on a running server (`--server`
 * `--token`); see `coedit <verb> --help` and the README's CLI section.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { UsageError } from '../../server/config.js'
import { EXPORT_FORMATS, IMPORT_FORMATS, parseTimeSpec, type ExportFormat, type ImportFormat } from '../../server/doc-ops.js'
import type { VersionInfo } from '../../server/persistence/store.js'
import { DIFF_FORMATS, type DiffFormat } from '../../server/diff.js'
import { DEFAULT_ACTIVITY_BUCKET } from '../../server/history-log.js'
import { printJson, writeOut, type CliIO } from './io.js'
import { progress } from './progress.js'
import { offlineTarget, remoteTarget, verifyBackupFile, type Target } from './target.js'

type OptionTypes = Record<string, { type: 'string' | 'boolean'; short?: string }>

const COMMON: OptionTypes = {
  data: { type: 'string' },
  server: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

const COMMON_HELP = `Where:
  --data DIR          a data directory no server is using (env DATA_DIR, default ./data)
  --server URL        a running server, e.g. http://localhost:1234 (env COEDIT_SERVER)
  --token TOKEN       its admin token, as given to serve --admin-token (env COEDIT_TOKEN)
Output:
  --json              machine-readable output on stdout
Exit codes: 0 done, 1 failed, 2 bad usage.`

interface Parsed {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

function parse(argv: string[], extra: OptionTypes, positionals: number): Parsed {
  let parsed: Parsed
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...extra }, strict: true, allowPositionals: true }) as Parsed
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!)
  }
  if (!parsed.values.help && parsed.positionals.length !== positionals) {
    throw new UsageError(positionals === 0 ? `unexpected argument "${parsed.positionals[0]}"` : `expected ${positionals} argument${positionals > 1 ? 's' : ''}, got ${parsed.positionals.length}`)
  }
  return parsed
}

function target(values: Parsed['values'], io: CliIO): Target {
  const server = (values.server as string | undefined) ?? io.env.COEDIT_SERVER
  const data = values.data as string | undefined
  if (data !== undefined && values.server !== undefined) throw new UsageError('give either --data or --server, not both')
  if (server && data === undefined) {
    const token = (values.token as string | undefined) ?? io.env.COEDIT_TOKEN
    if (!token) throw new UsageError('--server needs --token TOKEN (or COEDIT_TOKEN): the token the server was started with (--admin-token)')
    return remoteTarget(server, token)
  }
  if (values.token !== undefined) throw new UsageError('--token goes with --server')
  return offlineTarget(data ?? (io.env.DATA_DIR || './data'))
}

function choice<T extends string>(value: unknown, allowed: readonly T[], what: string): T | undefined {
  if (value === undefined) return undefined
  if (!(allowed as readonly string[]).includes(value as string)) throw new UsageError(`${what} must be one of ${allowed.join(', ')}`)
  return value as T
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'))

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(1)} GiB`
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n'
}

/** Runs `fn` on the target and closes it whatever happens. */
async function withTarget<T>(values: Parsed['values'], io: CliIO, fn: (t: Target) => Promise<T>): Promise<T> {
  const t = target(values, io)
  try {
    return await fn(t)
  } finally {
    await t.close()
  }
}

export interface Verb {
  summary: string
  help: string
  run(argv: string[], io: CliIO): Promise<number>
}

const helpOr = async (values: Parsed['values'], io: CliIO, help: string): Promise<boolean> => {
  if (!values.help) return false
  await writeOut(io, `${help}\n\n${COMMON_HELP}\n`)
  return true
}

export const rooms: Verb = {
  summary: 'list rooms with their size, stored updates and last change',
  help: 'Usage: coedit rooms [--data DIR | --server URL --token TOKEN] [--json]\n\nLists every stored room: its size on disk, the updates not yet compacted, and when it last changed.',
  async run(argv, io) {
    const { values } = parse(argv, {}, 0)
    if (await helpOr(values, io, this.help)) return 0
    const list = await withTarget(values, io, (t) => t.rooms())
    if (values.json) {
      await printJson(io, list)
      return 0
    }
    if (list.length === 0) {
      await writeOut(io, 'no rooms\n')
      return 0
    }
    await writeOut(io, table([
      ['ROOM', 'SIZE', 'UPDATES', 'LAST CHANGE'],
      ...list.map((r) => [r.name, formatBytes(r.bytes), String(r.updates), iso(r.updatedAt)]),
    ]))
    return 0
  },
}

export const exportVerb: Verb = {
  summary: 'write a room as text, JSON or a binary Yjs update',
  help: `Usage: coedit export ROOM [--format text|json|update] [--out FILE] [--name TEXT] [--at VERSION|TIME]

  --format text       the shared text (default; --name picks the Y.Text, default "text")
  --format json       the whole document as JSON
  --format update     the binary Yjs state (Y.encodeStateAsUpdate): import it back losslessly
  --out FILE          write to FILE instead of stdout
  --at VERSION|TIME   the room as of a version of coedit history (an id), or as of a
                      time (2026-11-22T10:00:00.250Z, 90s): within the exact window
                      (serve --history-exact, default 24h) exactly every update stored
                      at or before it; older, the newest version at or before it`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { format: { type: 'string' }, out: { type: 'string' }, name: { type: 'string' }, at: { type: 'string' } }, 1)
    if (await helpOr(values, io, this.help)) return 0
    const format = choice<ExportFormat>(values.format, EXPORT_FORMATS, '--format') ?? 'text'
    const out = values.out as string | undefined
    if (format === 'update' && !out && io.stdout.isTTY) throw new UsageError('--format update is binary: give --out FILE or redirect stdout')
    const at = values.at as string | undefined
    if (at !== undefined) checkVersionSpec(at, io)
    const body = await withTarget(values, io, (t) => t.export(positionals[0]!, format, values.name as string | undefined, at))
    if (out) {
      await writeFile(out, body)
      if (values.json) await printJson(io, { room: positionals[0], format, file: out, bytes: body.length })
    } else {
      await writeOut(io, body)
    }
    return 0
  },
}

function guessFormat(file: string): ImportFormat {
  if (/\.json$/i.test(file)) return 'json'
  if (/\.(txt|text|md)$/i.test(file)) return 'text'
  return 'update'
}

export const importVerb: Verb = {
  summary: 'merge a Yjs update, text or JSON file into a room',
  help: `Usage: coedit import ROOM FILE [--format update|text|json] [--name TEXT]

Merges FILE into ROOM (creating it) as a new change: connected clients see it at once.
  --format update     a binary Yjs update (default, unless FILE ends in .json, .txt or .md)
  --format text       replaces the shared text (--name, default "text") with FILE's text
  --format json       sets each root of a JSON object as written by export --format json
FILE - reads stdin. A file that is not what --format says changes nothing.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { format: { type: 'string' }, name: { type: 'string' } }, 2)
    if (await helpOr(values, io, this.help)) return 0
    const [room, file] = positionals as [string, string]
    const format = choice<ImportFormat>(values.format, IMPORT_FORMATS, '--format') ?? guessFormat(file)
    let body: Uint8Array
    try {
      body = file === '-' ? new Uint8Array(Buffer.concat(await collect(io.stdin))) : new Uint8Array(await readFile(file))
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    const result = await withTarget(values, io, (t) => t.import(room, body, format, values.name as string | undefined))
    if (values.json) await printJson(io, { ...result, format })
    else await writeOut(io, result.bytes === 0 ? `${room}: already up to date, nothing imported\n` : `${room}: imported ${format} (${formatBytes(result.bytes)} update${result.created ? ', new room' : ''})\n`)
    return 0
  },
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = []
  for await (const chunk of stream) parts.push(chunk)
  return parts
}

export const backup: Verb = {
  summary: 'write every room to one file, consistent as of one moment (live servers keep serving)',
  help: `Usage: coedit backup --out FILE [--data DIR | --server URL --token TOKEN] [--json]

Writes every room, with its history, as of one moment to FILE. The file appears only
once it is complete and checked (a checksum covers it); an existing FILE is replaced.`,
  async run(argv, io) {
    const { values } = parse(argv, { out: { type: 'string' } }, 0)
    if (await helpOr(values, io, this.help)) return 0
    const out = values.out as string | undefined
    if (!out) throw new UsageError('backup needs --out FILE')
    const result = await withTarget(values, io, (t) => t.backup(out, progress(io, 'backup')))
    if (values.json) await printJson(io, result)
    else await writeOut(io, `backed up ${result.rooms} room${result.rooms === 1 ? '' : 's'} to ${result.file} (${formatBytes(result.bytes)})\n`)
    return 0
  },
}

export const restoreBackup: Verb = {
  summary: 'restore a backup file into an empty data directory (or a running server)',
  help: `Usage: coedit restore-backup FILE [--force] [--data DIR | --server URL --token TOKEN] [--json]

Checks FILE in full first (a truncated or corrupt file changes nothing), then writes it and
reads every room back to verify it.
  --data DIR    must be empty or missing; --force replaces the rooms the backup holds and
                keeps the others
  --server URL  the server must have no rooms; --force merges the backup into its rooms
                (connected clients see the restored content at once)`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { force: { type: 'boolean' } }, 1)
    if (await helpOr(values, io, this.help)) return 0
    const file = positionals[0]!
    const checked = await verifyBackupFile(file)
    const result = await withTarget(values, io, (t) => t.restore(file, values.force === true, progress(io, 'restore')))
    if (values.json) await printJson(io, { file, ...result })
    else await writeOut(io, `restored ${result.rooms} room${result.rooms === 1 ? '' : 's'} from ${file}; ${result.verified} verified\n`)
    return checked.rooms === result.verified ? 0 : 1
  },
}

export const history: Verb = {
  summary: 'list the stored versions of a room and who changed it when',
  help: `Usage: coedit history ROOM [--activity] [--bucket DURATION] [--data DIR | --server URL --token TOKEN] [--json]

Lists the versions the server keeps of ROOM (see serve --history-interval and
--history-retention), oldest first, then its activity within the exact window (serve
--history-exact): per interval, how many updates, their bytes and which users. Revert to a
version with coedit revert ROOM --to ID, or to any instant of the window with --to TIME.
  --activity          only the activity (with --json: the activity list, not the versions)
  --bucket DURATION   length of an activity interval (default 1m; examples: 10s, 1h)`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { activity: { type: 'boolean' }, bucket: { type: 'string' } }, 1)
    if (await helpOr(values, io, this.help)) return 0
    const room = positionals[0]!
    const bucket = values.bucket === undefined ? DEFAULT_ACTIVITY_BUCKET : bucketOf(values.bucket as string)
    const [versions, act] = await withTarget(values, io, async (t) => [await t.history(room), await t.activity(room, bucket)] as const)
    if (values.json) {
      await printJson(io, values.activity ? act.activity : versions)
      return 0
    }
    let out = ''
    if (!values.activity) {
      out += versions.length === 0
        ? `${room}: no versions recorded yet\n`
        : table([['VERSION', 'TIME', 'SIZE', ''], ...versions.map((v: VersionInfo) => [String(v.id), iso(v.at), formatBytes(v.bytes), v.pinned ? 'before a revert' : ''])])
      out += '\n'
    }
    out += `exact to the millisecond ${act.exactSince === undefined ? 'since the room was created' : `since ${isoMs(act.exactSince)}`}\n`
    if (act.activity.length > 0) {
      out += table([['FROM', 'UPDATES', 'BYTES', 'USERS'], ...act.activity.map((b) => [iso(b.from), String(b.updates), formatBytes(b.bytes), b.users.join(', ') || '-'])])
    }
    await writeOut(io, out)
    return 0
  },
}

const isoMs = (ms: number): string => new Date(ms).toISOString()

function bucketOf(text: string): number {
  const m = /^\s*(\d+)\s*(s|m|h|d)\s*$/i.exec(text)
  if (!m || Number(m[1]) < 1) throw new UsageError(`--bucket: "${text}" is not a duration (examples: 10s, 1m, 1h)`)
  return Number(m[1]) * ({ s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as Record<string, number>)[m[2]!.toLowerCase()]!
}

export const revert: Verb = {
  summary: 'bring a room back to a version or a time, as a new change',
  help: `Usage: coedit revert ROOM --to VERSION|TIME [--data DIR | --server URL --token TOKEN] [--json]

Brings ROOM's content back to a version (an id from coedit history) or to a time: ISO
8601 (2026-11-22T10:00:00.250Z) or a time ago (5s, 10m, 2h, 3d). Within the exact window
(serve --history-exact, default 24h) that is exactly every update stored at or before the
time and none after; older, the newest version at or before it.
The revert is a new change on top of the current state: connected clients see it at once,
and a client that was offline does not bring the removed content back. The state before
the revert is kept as a version, so a revert can be reverted.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { to: { type: 'string' } }, 1)
    if (await helpOr(values, io, this.help)) return 0
    const to = values.to as string | undefined
    if (!to) throw new UsageError('revert needs --to VERSION|TIME')
    checkVersionSpec(to, io)
    const result = await withTarget(values, io, (t) => t.revert(positionals[0]!, to))
    if (values.json) await printJson(io, result)
    else {
      const what = result.exact ? `${isoMs(result.version.at)} (exact)` : `version ${result.version.id} (${iso(result.version.at)})`
      await writeOut(io, result.bytes === 0
        ? `${result.room}: already as of ${what}, nothing changed\n`
        : `${result.room}: reverted to ${what}\n`)
    }
    return 0
  },
}

/** A malformed time is bad usage (exit 2), not a failure of the operation. */
function checkVersionSpec(spec: string, io: CliIO): void {
  if (/^\s*\d+\s*$/.test(spec)) return
  try {
    parseTimeSpec(spec, io.now())
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

export const diff: Verb = {
  summary: 'show what changed in a room between two moments',
  help: `Usage: coedit diff ROOM --from VERSION|TIME [--to VERSION|TIME] [--name TEXT] [--format text|json]

Prints a unified diff of the shared text (--name, default "text") as of --from and as of
--to (default: now). Times are exact within the window of serve --history-exact.
  --format text       a unified diff (default); nothing when the text did not change
  --format json       every root that changed, before and after (any type), as JSON`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { from: { type: 'string' }, to: { type: 'string' }, name: { type: 'string' }, format: { type: 'string' } }, 1)
    if (await helpOr(values, io, this.help)) return 0
    const from = values.from as string | undefined
    if (!from) throw new UsageError('diff needs --from VERSION|TIME')
    checkVersionSpec(from, io)
    const to = values.to as string | undefined
    if (to !== undefined) checkVersionSpec(to, io)
    const format = choice<DiffFormat>(values.format, DIFF_FORMATS, '--format') ?? 'text'
    const body = await withTarget(values, io, (t) => t.diff(positionals[0]!, from, to, format, values.name as string | undefined))
    await writeOut(io, body)
    return 0
  },
}

export const OPERATOR_VERBS: Record<string, Verb> = {
  rooms,
  export: exportVerb,
  import: importVerb,
  backup,
  'restore-backup': restoreBackup,
  history,
  revert,
  diff,
}
