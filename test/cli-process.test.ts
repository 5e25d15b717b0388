/**
 * The `coedit` command as a process, as the README uses it: exit codes (0 done, 1 failed,
 * 2 bad usage), the locked-directory message against a real `coedit serve`, and a live
 * backup restored into a second server.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { runCli, startChildServer } from './helpers/child-server.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'

test('coedit verbs as processes: exit codes, locked directory, live backup restored into a second server', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const one = join(dir.path, 'one')
  const server = await startChildServer(['--data', one, '--admin-token', 'ops-token'])
  t.after(() => server.kill('SIGTERM'))
  const http = `http://127.0.0.1:${server.port}`
  const client = connect(server.url, 'notes')
  t.after(() => client.destroy())
  await synced(client, 20_000)
  client.text.insert(0, 'written before the backup')

  const auth = ['--server', http, '--token', 'ops-token']
  // The locked directory and the live export are independent processes: run side by side.
  const [locked] = await Promise.all([
    runCli(['rooms', '--data', one]),
    waitFor(async () => (await runCli(['export', 'notes', ...auth])).stdout === 'written before the backup', { timeout: 30_000, message: 'edit stored' }),
  ])
  assert.equal(locked.code, 1)
  assert.match(locked.stderr, /data directory .* is in use by a running server: use --server URL --admin-token TOKEN/)
  const rooms = await runCli(['rooms', '--json', ...auth])
  assert.equal(rooms.code, 0, rooms.stderr)
  assert.deepEqual((JSON.parse(rooms.stdout) as Array<{ name: string }>).map((r) => r.name), ['notes'])

  const file = join(dir.path, 'live.coedit')
  const backup = await runCli(['backup', '--out', file], { COEDIT_SERVER: http, COEDIT_TOKEN: 'ops-token' })
  assert.equal(backup.code, 0, backup.stderr)
  assert.match(backup.stderr, /backed up 1 room/)
  client.text.insert(0, 'after: ')

  const two = join(dir.path, 'two')
  const restore = await runCli(['restore-backup', file, '--data', two])
  assert.equal(restore.code, 0, restore.stderr)
  const second = await startChildServer(['--data', two])
  t.after(() => second.kill('SIGTERM'))
  const reader = connect(second.url, 'notes')
  t.after(() => reader.destroy())
  await synced(reader, 20_000)
  await waitFor(() => reader.text.toString() === 'written before the backup', { timeout: 10_000, message: 'restored content served' })

  const cases: Array<[string[], number, RegExp]> = [
    [['export'], 2, /expected 1 argument/],
    [['revert', 'notes', '--to', 'soon', ...auth], 2, /not a time/],
    [['export', 'missing-room', ...auth], 1, /no room "missing-room"/],
    [['rooms', '--server', http, '--token', 'not-the-token'], 1, /refused the admin token/],
    [['restore-backup', join(dir.path, 'nothing-here'), '--data', join(dir.path, 'three')], 1, /no file/],
  ]
  // Independent processes, two at a time: each is a tsx start-up, slow on a loaded machine.
  for (let i = 0; i < cases.length; i += 2) {
    const pair = cases.slice(i, i + 2)
    const results = await Promise.all(pair.map(([args]) => runCli(args)))
    pair.forEach(([args, code, message], j) => {
      assert.equal(results[j]!.code, code, `${args.join(' ')}: ${results[j]!.stderr}`)
      assert.match(results[j]!.stderr, message, args.join(' '))
    })
  }
  const help = await runCli(['backup', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /Usage: coedit backup --out FILE/)
})
