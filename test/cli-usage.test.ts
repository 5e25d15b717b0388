/**
 * The CLI's rough edges, each with its case: one admin-token flag story, usage errors in
 * coedit's words with a "did you mean", `-` as stdin/stdout, a hint when text is imported
 * as a Yjs update, exit codes as the README's table says, secrets and durations refused as
 * the server would refuse them, a confirmation on stderr for every verb, aligned --help
 * columns, and names escaped on the terminal.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { decodeJwt } from 'jose'
import * as Y from 'yjs'
import { closest } from '../server/operator/args.js'
import { UsageError } from '../server/errors.js'
import { parseServeArgs, serveHelp } from '../server/config.js'
import { parseTimeSpec } from '../server/operator/doc-ops.js'
import { parseRetention } from '../server/operator/history.js'
import { startServer } from '../server/index.js'
import { runVerb, type CliIO } from '../scripts/cli/io.js'
import { OPERATOR_VERBS } from '../scripts/cli/verbs.js'
import { serve } from '../scripts/serve.js'
import { cli } from './helpers/cli.js'
import { runCli, ROOT } from './helpers/child-server.js'
import { tempDir } from './helpers/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!'

/** Fills a data directory with one room holding `text`. */
async function roomWith(data: string, room: string, text: string): Promise<void> {
  const res = await cli(['import', room, '-', '--format', 'text', '--data', data], { stdin: new TextEncoder().encode(text) })
  assert.equal(res.code, 0, res.stderr)
}

/** `coedit serve` in this process, for arguments it refuses before starting anything. */
async function serveRefuses(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  const stderr = new PassThrough()
  let text = ''
  stderr.on('data', (d: Buffer) => { text += d.toString() })
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const io: CliIO = { stdout: new PassThrough(), stderr, stdin: (async function* () {})(), env: process.env, now: Date.now }
    const code = await runVerb('serve', (a) => serve(a), args, io)
    return { code, stderr: text }
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]
  }
}

/** Child processes, two at a time: each is a tsx start-up, slow on a loaded machine. */
async function processes(cases: string[][]): Promise<Array<{ code: number | null; stdout: string; stderr: string }>> {
  const results: Array<{ code: number | null; stdout: string; stderr: string }> = []
  for (let i = 0; i < cases.length; i += 2) {
    results.push(...await Promise.all(cases.slice(i, i + 2).map((args) => runCli(args, {}, 180_000))))
  }
  return results
}

const oneLine = (stderr: string, what: string): string => {
  const lines = stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `${what}: one line, got ${JSON.stringify(stderr)}`)
  return lines[0]!
}

test('--admin-token works on every verb, --token stays as its other name; both together must agree', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ port: 0, dataDir: join(dir.path, 'live'), adminToken: 'ops-key' })
  t.after(() => server.close())
  const live = ['--server', server.httpUrl]
  const file = join(dir.path, 'in.txt')
  await writeFile(file, 'hello')

  assert.equal((await cli(['import', 'notes', file, ...live, '--admin-token', 'ops-key'])).code, 0)
  assert.equal((await cli(['export', 'notes', ...live, '--admin-token', 'ops-key'])).out, 'hello')
  assert.equal((await cli(['export', 'notes', ...live, '--token', 'ops-key'])).out, 'hello', '--token still works')
  assert.equal((await cli(['export', 'notes', ...live, '--token', 'ops-key', '--admin-token', 'ops-key'])).code, 0)
  const clash = await cli(['export', 'notes', ...live, '--token', 'ops-key', '--admin-token', 'other'])
  assert.equal(clash.code, 2)
  assert.match(clash.stderr, /--admin-token and --token/)

  // Every verb knows the flag: without --server it is refused for that reason, not as unknown.
  for (const [name, args] of [['rooms', []], ['export', ['r']], ['import', ['r', file]], ['backup', ['--out', 'x']], ['restore-backup', ['x']], ['history', ['r']], ['revert', ['r', '--to', '1']]] as const) {
    const res = await cli([name, ...args, '--admin-token', 'k'])
    assert.equal(res.code, 2, name)
    assert.match(oneLine(res.stderr, name), /--admin-token goes with --server/, name)
  }
})

test('usage errors are one line in coedit\'s words, exit 2, with a "did you mean"', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['rooms', '--admin-tokn', 'x'], /^coedit rooms: unknown option --admin-tokn: did you mean --admin-token\?$/],
    [['export', 'r', '--fromat', 'json'], /unknown option --fromat: did you mean --format\?/],
    [['backup', '--out'], /--out needs a value \(--out FILE\)/],
    [['backup', '--out', '--json'], /--out needs a value/],
    [['rooms', '--json=yes'], /--json takes no value/],
    [['rooms', '-x'], /unknown option -x \(--help lists the options\)/],
    [['rooms', '--constructor'], /unknown option --constructor/],
    [['export'], /expected 1 argument \(ROOM\), got 0/],
    [['history', 'a', 'b'], /unexpected argument "b"/],
    [['export', 'r', '--format', 'yaml'], /--format must be one of text, json, update/],
    [['token', '--secret', SECRET, '--rom', 'x'], /unknown option --rom: did you mean --room\?/],
  ]
  for (const [args, message] of cases) {
    const res = await cli(args)
    assert.equal(res.code, 2, args.join(' '))
    assert.match(oneLine(res.stderr, args.join(' ')), message)
    assert.doesNotMatch(res.stderr, /parseArgs|ERR_PARSE_ARGS|TypeError/)
  }
  const serveTypo = await serveRefuses(['--max-mesage-size', '1MiB'])
  assert.equal(serveTypo.code, 2)
  assert.match(oneLine(serveTypo.stderr, 'serve'), /unknown option --max-mesage-size: did you mean --max-message-size\?/)
  assert.throws(() => parseServeArgs(['--no-ech'], {}), /did you mean --no-echo\?/)
  assert.throws(() => parseServeArgs(['stray'], {}), UsageError)
  assert.equal(closest('xyzzy', ['rooms', 'export']), undefined, 'no far-fetched suggestion')
  assert.equal(closest('restore', ['rooms', 'restore-backup']), 'restore-backup', 'a unique prefix')
})

test('bare coedit, an unknown command, --help: as processes', async () => {
  const [bare, typo, help, option] = await processes([[], ['rom'], ['--help'], ['rooms', '--admin-tokn', 'x']])
  assert.equal(bare!.code, 2, 'bare coedit is bad usage')
  assert.equal(bare!.stdout, '', 'usage for an error goes to stderr')
  assert.match(bare!.stderr, /^Usage: coedit <command>/)
  assert.equal(typo!.code, 2)
  assert.equal(oneLine(typo!.stderr, 'rom'), 'coedit: unknown command "rom": did you mean rooms?')
  assert.equal(help!.code, 0, 'asked-for help is no error')
  assert.match(help!.stdout, /^Usage: coedit <command>/)
  assert.equal(help!.stderr, '')
  assert.equal(option!.code, 2)
  assert.equal(oneLine(option!.stderr, 'option'), 'coedit rooms: unknown option --admin-tokn: did you mean --admin-token?')
})

test('- is stdout for export and backup, stdin for import and restore-backup; no file named -', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const one = join(dir.path, 'one')
  await roomWith(one, 'a', 'first')
  await roomWith(one, 'b', 'second')
  const exported = await cli(['export', 'a', '--out', '-', '--data', one])
  assert.equal(exported.code, 0, exported.stderr)
  assert.equal(exported.out, 'first')

  const backup = await cli(['backup', '--out', '-', '--data', one])
  assert.equal(backup.code, 0, backup.stderr)
  assert.ok(backup.stdout.length > 0, 'the backup is on stdout')
  assert.equal(existsSync(join(ROOT, '-')), false, 'no file named -')
  const two = join(dir.path, 'two')
  const restore = await cli(['restore-backup', '-', '--data', two], { stdin: backup.stdout })
  assert.equal(restore.code, 0, restore.stderr)
  assert.match(restore.stderr, /restored 2 rooms from stdin; 2 verified/)
  assert.equal((await cli(['export', 'b', '--data', two])).out, 'second')

  const cut = await cli(['restore-backup', '-', '--data', join(dir.path, 'three')], { stdin: backup.stdout.subarray(0, backup.stdout.length - 7) })
  assert.equal(cut.code, 1, 'a truncated backup on stdin fails')
  assert.equal(existsSync(join(dir.path, 'three')), false, 'and writes nothing')
  const both = await cli(['backup', '--out', '-', '--json', '--data', one])
  assert.equal(both.code, 2, '--json and --out - both want stdout')
})

test('text or JSON piped into import as a Yjs update: the error says which --format to give, nothing changes', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  await roomWith(data, 'keep', 'kept')
  const text = await cli(['import', 'new', '-', '--data', data], { stdin: new TextEncoder().encode('Hello, world\nsecond line\n') })
  assert.equal(text.code, 1)
  assert.match(oneLine(text.stderr, 'text'), /stdin is not a Yjs update .*: it looks like text: add --format text/)
  assert.doesNotMatch(text.stderr, /contentRefs|BITS5/)
  const json = await cli(['import', 'new', '-', '--data', data], { stdin: new TextEncoder().encode('{"text": "hi"}') })
  assert.equal(json.code, 1)
  assert.match(json.stderr, /it looks like JSON: add --format json/)
  const binary = await cli(['import', 'new', '-', '--data', data], { stdin: new Uint8Array([0xff, 0xfe, 0x00, 0x13, 0x99]) })
  assert.equal(binary.code, 1)
  assert.match(binary.stderr, /not a Yjs update/)
  assert.doesNotMatch(binary.stderr, /--format text/, 'binary junk is not called text')
  const rooms = JSON.parse((await cli(['rooms', '--json', '--data', data])).out) as Array<{ name: string }>
  assert.deepEqual(rooms.map((r) => r.name), ['keep'], 'nothing imported')
  const ok = await cli(['import', 'new', '-', '--format', 'text', '--data', data], { stdin: new TextEncoder().encode('Hello') })
  assert.equal(ok.code, 0, ok.stderr)
})

test('exit code 0: done, and help that was asked for', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  await roomWith(data, 'r', 'text')
  for (const args of [['rooms', '--data', data], ['export', 'r', '--out', '-', '-q', '--data', data], ['history', 'r', '--data', data], ['rooms', '--help'],
    ['token', '--secret', SECRET, '--room', 'r', '--ttl', '3600s']]) {
    const res = await cli(args)
    assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`)
  }
  const [help] = await processes([['serve', '--help']])
  assert.equal(help!.code, 0)
})

test('exit code 1: well-formed, but it could not be done', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  await roomWith(data, 'r', 'text')
  const cases: Array<[string[], RegExp]> = [
    [['import', 'r', join(dir.path, 'missing.txt'), '--data', data], /no file .*missing\.txt/],
    [['restore-backup', join(dir.path, 'missing.coedit'), '--data', join(dir.path, 'two')], /no file/],
    [['export', 'nope', '--data', data], /no room "nope"/],
    [['revert', 'r', '--to', '99', '--data', data], /no version 99/],
    [['rooms', '--data', join(dir.path, 'nowhere')], /no data directory/],
    [['export', 'r', '--out', join(dir.path, 'no-such-dir', 'x.txt'), '--data', data], /cannot write .*ENOENT/],
    [['rooms', '--server', 'http://127.0.0.1:1', '--admin-token', 'k'], /cannot reach/],
    [['token', '--private-key', join(dir.path, 'missing.pem'), '--room', 'r'], /./],
  ]
  for (const [args, message] of cases) {
    const res = await cli(args)
    assert.equal(res.code, 1, `${args.join(' ')}: ${res.stderr}`)
    assert.match(oneLine(res.stderr, args.join(' ')), message)
  }
  const [missing] = await processes([['import', 'r', join(dir.path, 'missing.txt'), '--data', data]])
  assert.equal(missing!.code, 1, `a missing file as a process: ${missing!.stderr}`)
})

test('exit code 2: bad usage, nothing attempted', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const cases: string[][] = [
    ['rooms', '--server', '127.0.0.1:34001', '--admin-token', 'x'],
    ['rooms', '--server', 'localhost:34001', '--admin-token', 'x'],
    ['rooms', '--server', 'ftp://example.invalid/', '--admin-token', 'x'],
    ['rooms', '--data', dir.path, '--server', 'http://127.0.0.1:1'],
    ['revert', 'r', '--to', 'soon', '--data', dir.path],
    ['backup', '--data', dir.path],
    ['token', '--secret', 'short', '--room', 'r'],
    ['token', '--secret', SECRET, '--room', 'r', '--ttl', '3600'],
  ]
  for (const args of cases) {
    const res = await cli(args)
    assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`)
    oneLine(res.stderr, args.join(' '))
  }
  assert.match((await cli(cases[0]!)).stderr, /"127\.0\.0\.1:34001" has no scheme: did you mean http:\/\/127\.0\.0\.1:34001\?/)
  const serveCases: Array<[string[], Record<string, string>]> = [
    [['--auth-secret', 'short'], {}],
    [[], { AUTH_SECRET: 'short' }],
    [['--room-name-pattern', '('], {}],
    [['--ping-interval', '30000'], {}],
  ]
  for (const [args, env] of serveCases) {
    const res = await serveRefuses(args, env)
    assert.equal(res.code, 2, `serve ${args.join(' ')} ${JSON.stringify(env)}: ${res.stderr}`)
    oneLine(res.stderr, 'serve')
  }
  const [short] = await processes([['serve', '--auth-secret', 'short', '--port', '0', '--data', join(dir.path, 'never')]])
  assert.equal(short!.code, 2, short!.stderr)
  assert.match(short!.stderr, /--auth-secret must be at least 32 bytes/)
  assert.equal(existsSync(join(dir.path, 'never')), false, 'nothing started')
})

test('token refuses a secret the server would refuse', async () => {
  const res = await cli(['token', '--secret', 'x'.repeat(31), '--room', 'r'])
  assert.equal(res.code, 2)
  assert.equal(res.out, '', 'no token printed')
  assert.match(res.stderr, /--secret must be at least 32 bytes/)
  const env = await cli(['token', '--room', 'r'], { env: { AUTH_SECRET: 'short' } })
  assert.equal(env.code, 2)
  assert.match(env.stderr, /AUTH_SECRET must be at least 32 bytes/)
  assert.equal((await cli(['token', '--room', 'r'], { env: { AUTH_SECRET: SECRET } })).code, 0)
})

test('durations: one rule everywhere, a unit is required (only 0 goes without)', async () => {
  const bare = await cli(['token', '--secret', SECRET, '--room', 'r', '--ttl', '3600'])
  assert.equal(bare.code, 2)
  assert.match(bare.stderr, /--ttl: "3600" has no unit: write 3600s/)
  const ok = await cli(['token', '--secret', SECRET, '--room', 'r', '--ttl', '3600s'])
  const claims = decodeJwt(ok.out.trim())
  assert.equal(claims.exp! - claims.iat!, 3600, '--ttl 3600s lasts an hour')
  assert.equal(decodeJwt((await cli(['token', '--secret', SECRET, '--room', 'r', '--ttl', '7d'])).out.trim()).exp! - Math.floor(Date.now() / 1000) > 6 * 86_400, true)

  assert.throws(() => parseServeArgs(['--ping-interval', '30000'], {}), /--ping-interval: "30000" has no unit/)
  assert.throws(() => parseServeArgs([], { ROOM_GRACE: '500' }), /ROOM_GRACE: "500" has no unit/)
  assert.equal(parseServeArgs(['--ping-interval', '30s'], {}).pingInterval, 30_000)
  assert.equal(parseServeArgs(['--history-interval', '1d'], {}).historyInterval, 86_400_000, 'every unit works for every duration')
  assert.equal(parseServeArgs(['--shutdown-delay', '0'], {}).shutdownDelay, 0)
  assert.throws(() => parseRetention('3600:60'), /no unit/)
  assert.deepEqual(parseRetention('2h:1800s'), [{ age: 7_200_000, every: 1_800_000 }])
  const now = Date.parse('2026-01-01T00:00:00Z')
  assert.equal(parseTimeSpec('1500ms', now), now - 1500, 'a time ago takes the same units')
  assert.equal(parseTimeSpec('2h ago', now), now - 7_200_000)
  assert.match(serveHelp(), /A duration needs a unit/)
})

test('every verb confirms what it did on stderr; --quiet keeps it quiet', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  const src = join(dir.path, 'in.txt')
  await writeFile(src, 'hello')
  const file = join(dir.path, 'b.coedit')
  const steps: Array<[string[], RegExp]> = [
    [['import', 'r', src, '--data', data], /^r: imported text from .*in\.txt \(.* update, new room\)$/],
    [['export', 'r', '--out', join(dir.path, 'out.txt'), '--data', data], /^r: exported text \(5 B\) to .*out\.txt$/],
    [['export', 'r', '--data', data], /^r: exported text \(5 B\) to stdout$/],
    [['rooms', '--data', data], /^1 room$/],
    [['history', 'r', '--data', data], /^r: no versions recorded yet$/],
    [['backup', '--out', file, '--data', data], /^backed up 1 room to .*b\.coedit \(.*\)$/],
    [['restore-backup', file, '--data', join(dir.path, 'two')], /^restored 1 room from .*b\.coedit; 1 verified$/],
    [['token', '--secret', SECRET, '--room', 'r', '--read-only'], /^token for r \(read-only\), expires \d{4}-.*Z$/],
  ]
  for (const [args, message] of steps) {
    const res = await cli(args)
    assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`)
    assert.match(oneLine(res.stderr, args.join(' ')), message)
  }
  await readFile(join(dir.path, 'out.txt'))
  for (const [args] of steps.slice(0, 5)) {
    const res = await cli([...args, '--quiet'])
    assert.equal(res.code, 0, `${args.join(' ')} --quiet: ${res.stderr}`)
    assert.equal(res.stderr, '', `${args.join(' ')} --quiet`)
  }
  assert.equal((await cli(['token', '--secret', SECRET, '--room', 'r', '-q'])).stderr, '')
})

/** Every option row of a help text: the description starts at one column, past at least two spaces. */
function assertAligned(help: string, what: string): void {
  const lines = help.split('\n')
  const rows = lines.filter((l) => /^ {2}-/.test(l))
  assert.ok(rows.length > 0, `${what}: has option rows`)
  const columns = new Set<number>()
  for (const row of rows) {
    const m = /^( {2}\S.*?)( {2,})\S/.exec(row)
    if (!m) continue // a flag too long for the column stands alone; its description follows below
    columns.add(m[1]!.length + m[2]!.length)
  }
  assert.equal(columns.size, 1, `${what}: descriptions start at one column, found ${[...columns].join(', ')}`)
  const column = [...columns][0]!
  for (const line of lines.slice(lines.indexOf(rows[0]!))) {
    if (line.startsWith(' ') && !/^ {2}-/.test(line)) assert.ok(line.startsWith(' '.repeat(column)) && line[column] !== ' ', `${what}: continuation "${line}" at column ${column}`)
  }
}

test('--help columns are aligned for serve, token and every verb', async () => {
  assertAligned(serveHelp(), 'serve')
  for (const name of [...Object.keys(OPERATOR_VERBS), 'token']) {
    const res = await cli([name, '--help'])
    assert.equal(res.code, 0)
    assertAligned(res.out, name)
  }
  assert.ok(serveHelp().split('\n').every((l) => l.length <= 100), 'serve --help fits 100 columns')
})

test('room names reach the terminal escaped: C1 controls, bidi overrides, backslashes', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  const names = ['csi\u009b31m', 'evil\u202etxt.exe', 'back\\u202e', 'plain', 'emoji 👋 ok']
  // Names with C1 controls or bidi overrides are refused now (offline import too), but a data
  // directory may hold them from before the name rules: they are stored directly.
  const legacy = names.slice(0, 2)
  const text = new Y.Doc()
  text.getText('text').insert(0, 'x')
  const store = await LevelStore.open(data)
  for (const name of legacy) await store.append(name, [Y.encodeStateAsUpdate(text)])
  await store.close()
  for (const name of legacy) {
    const refused = await cli(['import', name, '-', '--format', 'text', '--data', data], { stdin: new TextEncoder().encode('x') })
    assert.equal(refused.code, 1, refused.stderr)
    assert.doesNotMatch(refused.stderr, /[\u0080-\u009f\u202e]/, 'the refusal is escaped')
  }
  for (const name of names.slice(2)) {
    const res = await cli(['import', name, '-', '--format', 'text', '--data', data], { stdin: new TextEncoder().encode('x') })
    assert.equal(res.code, 0, res.stderr)
    assert.doesNotMatch(res.stderr, /[\u0080-\u009f\u202e]/, 'the confirmation is escaped')
  }
  const table = await cli(['rooms', '--data', data])
  assert.doesNotMatch(table.out, /[\u0080-\u009f\u202a-\u202e]/)
  assert.match(table.out, /csi\\u009b31m/)
  assert.match(table.out, /evil\\u202etxt\.exe/)
  assert.match(table.out, /back\\\\u202e/, 'a literal backslash cannot pose as an escape')
  assert.match(table.out, /emoji 👋 ok/, 'printable characters stay as they are')
  const json = await cli(['rooms', '--json', '--data', data])
  assert.doesNotMatch(json.out, /[\u0080-\u009f\u202e]/)
  assert.deepEqual((JSON.parse(json.out) as Array<{ name: string }>).map((r) => r.name).sort(), [...names].sort(), 'JSON escapes parse back to the names')
  const missing = await cli(['export', 'gone\u202e', '--data', data])
  assert.equal(missing.code, 1)
  assert.doesNotMatch(missing.stderr, /\u202e/, 'names in errors are escaped too')
  // A Yjs update exported and imported through - keeps the bytes exact.
  const update = await cli(['export', 'plain', '--format', 'update', '--data', data])
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update.stdout)
  assert.equal(doc.getText('text').toString(), 'x')
})
