/**
 * The production paths. `npm start` runs the built server with nothing between it and the
 * signal (Docker, systemd and Kubernetes stop things with SIGTERM), and the packed tarball
 * runs on its production dependencies alone, with exactly the commands the Dockerfile runs
 * (checked below, since no Docker engine runs where the tests do).
 *
 * Everything happens in a copy of the sources in a temp folder, so building does not touch
 * the dist/ that other test files may be serving from.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cpSync, existsSync, readFileSync, readdirSync, statSync, symlinkSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as Y from 'yjs'
import { encodeSyncUpdate } from '../server/room/protocol.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { ROOT, runCli, spawnServer, startChildServer, type ChildServer } from './helpers/child-server.js'

const run = promisify(execFile)
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

// The commands the Dockerfile's runtime stage runs, in this order (see the Dockerfile).
const UNPACK = 'tar -xzf /tmp/coedit.tgz -C /app --strip-components=1'
const INSTALL = 'npm ci --omit=dev --no-audit --no-fund'
const START = '["node", "dist/scripts/coedit.js", "serve"]'
const HEALTHCHECK = `node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 1234) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"`
const ENV = { NODE_ENV: 'production', HOST: '0.0.0.0' }

/** What a fresh clone has, without node_modules, dist or anything generated. */
const SOURCES = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'server', 'scripts', 'web']

interface Built { dir: string; tarball: string; files: string[]; remove: () => Promise<void> }
let built: Promise<Built> | undefined

/** A copy of the sources, built by `npm run prepare` and packed (once for this file). */
function buildAndPack(): Promise<Built> {
  built ??= (async () => {
    const tmp = await tempDir('coedit-production-')
    const dir = join(tmp.path, 'src')
    for (const name of SOURCES) {
      cpSync(join(ROOT, name), join(dir, name), {
        recursive: true,
        filter: (src) => !/[\\/](node_modules|\.build)$/.test(src),
      })
    }
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
    // What `npm install` runs in a fresh clone: it builds where the sources are.
    await run('npm', ['run', 'prepare'], { cwd: dir })
    // --ignore-scripts: built just above (the Dockerfile's build stage: npm ci, which builds).
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp.path, '--json'], { cwd: dir })
    const [info] = JSON.parse(stdout) as Array<{ filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> }>
    const tarball = join(tmp.path, info!.filename)
    console.log(`# ${info!.filename}: ${Math.round(info!.size / 1024)} KiB packed, ${Math.round(info!.unpackedSize / 1024)} KiB unpacked, ${info!.files.length} files`)
    return { dir, tarball, files: info!.files.map((f) => f.path), remove: tmp.remove }
  })()
  return built
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

test('coedit --version and coedit serve --version print the package version and exit 0', { timeout: 240_000 }, async () => {
  for (const args of [['--version'], ['serve', '--version']]) {
    const result = await runCli(args, {}, 120_000)
    assert.deepEqual({ code: result.code, stdout: result.stdout, stderr: result.stderr }, { code: 0, stdout: `${version}\n`, stderr: '' }, `coedit ${args.join(' ')}`)
  }
})

test('the package ships the server, the CLI, the editor and types: no tests, no bench, no source maps', { timeout: 600_000 }, async (t) => {
  const { files } = await buildAndPack()
  for (const f of ['dist/scripts/coedit.js', 'dist/server/index.js', 'dist/server/index.d.ts', 'dist/web/index.html', 'dist/web/assets/app.js', 'LICENSE', 'CHANGELOG.md', 'README.md', 'package.json']) {
    assert.ok(files.includes(f), `${f} is in the package`)
  }
  const unwanted = files.filter((f) => f.endsWith('.map') || f.startsWith('dist/test/') || f.startsWith('dist/scripts/bench/') || f.endsWith('.ts') && !f.endsWith('.d.ts') || f.startsWith('test/') || f.startsWith('scripts/'))
  assert.deepEqual(unwanted, [], 'nothing else')
  t.diagnostic(`${files.length} files`)
})

test('npm start runs the built server itself: SIGTERM to npm stops the server, which stores everything and exits 0', { timeout: 600_000 }, async (t) => {
  const { dir } = await buildAndPack()
  const data = await tempDir()
  // npm's own process: npm forwards the signal to its script, which must be the server.
  // A generous start timeout: on a loaded machine npm alone takes seconds to start.
  let server: ChildServer = await spawnServer('npm', ['start', '--', '--port', '0', '--data', data.path, '--log-level', 'info'], { cwd: dir, group: true, timeout: 180_000 })
  t.after(async () => {
    await server.kill('SIGKILL')
    await data.remove()
  })
  const writer = await RawClient.open(`${server.url}/prod`)
  await writer.waitForMessage('sync-step1')
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 200; i++) doc.getText('text').insert(i, String(i % 10))
  for (const u of updates.slice(0, -1)) writer.send(encodeSyncUpdate(u))
  await new Promise<void>((resolve) => writer.ws.send(encodeSyncUpdate(updates.at(-1)!), () => resolve()))
  server.child.kill('SIGTERM')
  const closed = await writer.waitClosed(30_000)
  assert.equal(closed.code, 1001, 'the server itself got the signal and closed its clients as going away')
  const exit = await server.exited
  assert.deepEqual(exit, { code: 0, signal: null }, `npm start's exit status; stderr: ${server.stderr()}`)
  assert.ok(server.logs.some((l) => l.event === 'stopped'), 'the server logged its stop')
  assert.equal(await canConnect(server.port), false, 'nothing listens any more: no server left behind')

  server = await startChildServer(['--data', data.path], { timeout: 120_000 })
  const fresh = connect(server.url, 'prod')
  t.after(() => fresh.destroy())
  await synced(fresh, 20_000)
  assert.equal(fresh.text.toString(), doc.getText('text').toString(), 'every update sent before SIGTERM was stored')
})

test('the packed tarball, installed with production dependencies only, serves: /healthz, --version, a provider syncs', { timeout: 600_000 }, async (t) => {
  const { tarball } = await buildAndPack()
  const tmp = await tempDir('coedit-tarball-')
  const app = join(tmp.path, 'app')
  const data = join(tmp.path, 'data')
  t.after(() => tmp.remove())
  // The Dockerfile's runtime stage, with this test's paths (checked against the Dockerfile below).
  await run('mkdir', ['-p', app, data])
  await run('tar', ['-xzf', tarball, '-C', app, '--strip-components=1'])
  cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'))
  const started = Date.now()
  // --prefer-offline: from the local npm cache when it has everything (CI's npm ci filled it).
  await run('npm', [...INSTALL.split(' ').slice(1), '--prefer-offline'], { cwd: app })
  t.diagnostic(`npm ci --omit=dev: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  assert.ok(existsSync(join(app, 'node_modules', 'classic-level')), 'production dependencies installed')
  for (const dev of ['typescript', 'tsx', 'esbuild', 'playwright-core']) {
    assert.ok(!existsSync(join(app, 'node_modules', dev)), `${dev} (a dev dependency) is not installed`)
  }
  t.diagnostic(`installed: ${Math.round(du(app) / 1024 / 1024)} MiB`)

  const versionRun = await run(process.execPath, ['dist/scripts/coedit.js', '--version'], { cwd: app })
  assert.equal(versionRun.stdout.trim(), version)

  const [command, ...args] = JSON.parse(START) as string[]
  assert.equal(command, 'node')
  const server = await spawnServer(process.execPath, [...args, '--log-level', 'info'], { cwd: app, env: { ...ENV, PORT: '0', DATA_DIR: data }, timeout: 120_000 })
  t.after(() => server.kill('SIGKILL'))
  assert.ok(server.logs.some((l) => l.event === 'listening' && l.host === '0.0.0.0' && l.dataDir === data), 'HOST and DATA_DIR from the environment')

  const health = await run('sh', ['-c', HEALTHCHECK], { cwd: app, env: { ...process.env, PORT: String(server.port) } }).then(() => 0, (err: { code?: number }) => err.code ?? 1)
  assert.equal(health, 0, 'the HEALTHCHECK command passes')

  const a = connect(server.url, 'packed')
  const b = connect(server.url, 'packed')
  t.after(() => { a.destroy(); b.destroy() })
  await synced(a, 20_000)
  a.text.insert(0, 'from the tarball')
  await synced(b, 20_000)
  await waitFor(() => b.text.toString() === 'from the tarball', { timeout: 20_000, message: 'the second provider has the text' })

  server.child.kill('SIGTERM')
  assert.deepEqual(await server.exited, { code: 0, signal: null }, `stderr: ${server.stderr()}`)
  assert.ok(readdirSync(data).length > 0, 'LevelDB is in DATA_DIR')
})

test('the Dockerfile runs the commands the tarball test runs', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  for (const line of [UNPACK, INSTALL, `CMD ${START}`, `HEALTHCHECK`, HEALTHCHECK, 'STOPSIGNAL SIGTERM', 'HOST=0.0.0.0', 'NODE_ENV=production', 'DATA_DIR=/data', 'VOLUME /data', 'USER node']) {
    assert.ok(dockerfile.includes(line), `the Dockerfile has: ${line}`)
  }
})

function du(path: string): number {
  const st = statSync(path)
  if (!st.isDirectory()) return st.size
  let total = 0
  for (const entry of readdirSync(path)) total += du(join(path, entry))
  return total
}

test.after(async () => {
  if (built) await (await built).remove()
})
