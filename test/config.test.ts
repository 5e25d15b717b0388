/** `coedit serve` configuration: --help documents every option; bad values and a busy data directory are one clear line. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SERVE_OPTIONS, formatDefault, parseServeArgs } from '../server/config.js'
import { UsageError } from '../server/errors.js'
import { startServer } from '../server/server.js'
import { INVALID_CONFIGS } from './helpers/invalid-config.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { runCli } from './helpers/child-server.js'
import { tempDir } from './helpers/index.js'

const defaultText = formatDefault

test('coedit serve --help lists every option with its environment variable and default', async () => {
  const { code, stdout } = await runCli(['serve', '--help'])
  assert.equal(code, 0)
  for (const o of SERVE_OPTIONS) {
    assert.ok(stdout.includes(`--${o.flag}`), `--${o.flag} is documented`)
    const line = stdout.split('\n').find((l) => l.includes(`env ${o.env},`))
    assert.ok(line, `${o.env} is documented`)
    assert.ok(line.includes(`default ${defaultText(o)}`), `${o.flag}: default ${defaultText(o)} shown in "${line.trim()}"`)
  }
  assert.ok(stdout.includes('default 1234') && stdout.includes('default 127.0.0.1') && stdout.includes('default ./data'))
})

test('a bad value is one line on stderr and exit code 2', async () => {
  const cases: Array<{ args: string[]; env?: Record<string, string>; mention: string }> = [
    { args: ['--port', 'abc'], mention: '--port' },
    { args: ['--port', '70000'], mention: '--port' },
    { args: [], env: { PORT: '-1' }, mention: 'PORT' },
    { args: ['--ping-interval', 'soon'], mention: '--ping-interval' },
    { args: ['--max-message-size', '12 parsecs'], mention: '--max-message-size' },
    { args: [], env: { ROOM_GRACE: '0' }, mention: 'ROOM_GRACE' },
    { args: ['--log-level', 'loud'], mention: '--log-level' },
    { args: ['--no-such-option'], mention: 'no-such-option' },
    { args: ['--ping-interval', '30000'], mention: 'write 30000s for seconds or 30000ms' },
    { args: ['--max-mesage-size', '1MiB'], mention: 'did you mean --max-message-size?' },
    { args: ['--auth-secret', 'short'], mention: 'at least 32 bytes' },
  ]
  // Two at a time, with room to start: each is a tsx start-up, slow on a loaded machine.
  for (let i = 0; i < cases.length; i += 2) await Promise.all(cases.slice(i, i + 2).map(async (c) => {
    const { code, stderr, stdout } = await runCli(['serve', ...c.args], c.env, 180_000)
    const what = `${c.args.join(' ')} ${JSON.stringify(c.env ?? {})}`
    assert.equal(code, 2, `${what}: exit code`)
    const lines = stderr.trim().split('\n')
    assert.equal(lines.length, 1, `${what}: one line, got ${JSON.stringify(stderr)}`)
    assert.ok(lines[0]!.includes(c.mention), `${what}: names ${c.mention}: ${lines[0]}`)
    assert.equal(stdout.includes('listening'), false, `${what}: did not start`)
  }))
})

// One table (test/helpers/invalid-config.ts), both ways in: what the CLI refuses, startServer refuses.
for (const c of INVALID_CONFIGS) {
  test(`refused both ways: ${c.what}`, async () => {
    assert.throws(() => parseServeArgs(c.args, c.env ?? {}), (err: unknown) => err instanceof UsageError && err.message.includes(c.mention))
    await assert.rejects(startServer({ storage: 'memory', ...c.options }), (err: { code?: unknown; message?: string }) => {
      assert.equal(err.code, c.code, `${c.what}: ${err.message}`)
      assert.ok(err.message?.includes(c.mention), `${c.what}: names ${c.mention}: ${err.message}`)
      return true
    })
  })
}

test('coedit serve refuses every invalid combination: one line on stderr, exit code 2, nothing started', async () => {
  // Two at a time: each is a tsx start-up, slow on a loaded machine.
  for (let i = 0; i < INVALID_CONFIGS.length; i += 2) await Promise.all(INVALID_CONFIGS.slice(i, i + 2).map(async (c) => {
    const { code, stderr, stdout } = await runCli(['serve', '--port', '0', ...c.args], c.env, 180_000)
    assert.equal(code, 2, `${c.what}: exit code (${stderr})`)
    const lines = stderr.trim().split('\n')
    assert.equal(lines.length, 1, `${c.what}: one line, got ${JSON.stringify(stderr)}`)
    assert.ok(lines[0]!.includes(c.mention), `${c.what}: names ${c.mention}: ${lines[0]}`)
    assert.equal(stdout.includes('listening'), false, `${c.what}: did not start`)
  }))
})

test('a data directory in use by another server is a clear error and exit code 1', async (t) => {
  const dir = await tempDir()
  const holder = await LevelStore.open(dir.path)
  t.after(async () => {
    await holder.close()
    await dir.remove()
  })
  const { code, stderr } = await runCli(['serve', '--port', '0', '--data', dir.path])
  assert.equal(code, 1)
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line, got ${JSON.stringify(stderr)}`)
  assert.match(lines[0]!, /in use/)
  assert.ok(lines[0]!.includes(dir.path))
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
})

test('flags override the environment, which overrides the defaults', () => {
  const config = parseServeArgs(['--port', '4000', '--room-grace', '2s'], { PORT: '3000', HOST: '0.0.0.0', MAX_MESSAGE_SIZE: '1MiB' })
  assert.equal(config.port, 4000)
  assert.equal(config.host, '0.0.0.0')
  assert.equal(config.maxMessageSize, 1024 * 1024)
  assert.equal(config.roomGrace, 2000)
  assert.equal(parseServeArgs([], {}).maxMessageSize, 16 * 1024 * 1024)
  assert.equal(parseServeArgs([], {}).dataDir, './data')
})

test('the README configuration table is the one SERVE_OPTIONS generates', async () => {
  const { readFile } = await import('node:fs/promises')
  const { configTable } = await import('./helpers/config-table.js')
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const start = readme.indexOf('<!-- section:configuration -->')
  const section = readme.slice(start, readme.indexOf('<!-- section:', start + 1))
  assert.ok(section.includes(configTable()), 'README table out of date: node --import tsx test/helpers/config-table.ts')
})

test('durations: 0 where it means "none" (--shutdown-delay 0), at least 1ms elsewhere', () => {
  assert.equal(parseServeArgs(['--shutdown-delay', '0'], {}).shutdownDelay, 0)
  assert.equal(parseServeArgs([], { SHUTDOWN_DELAY: '1.5s' }).shutdownDelay, 1500)
  assert.throws(() => parseServeArgs(['--ping-interval', '0'], {}), /--ping-interval.*at least 1ms/)
})
