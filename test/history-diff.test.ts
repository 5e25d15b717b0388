/**
 * Issue 18: `coedit diff ROOM --from A --to B`: a unified diff of a Y.Text between two
 * moments, checked against GNU diff's own output for the same two texts (insert, delete,
 * replace); JSON for other types; the admin API the same; and its bad inputs.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { tempDir } from './helpers/index.js'
import { cli } from './helpers/cli.js'

const iso = (ms: number): string => new Date(ms).toISOString()

/** GNU diff -u's hunks (without its file header lines, which carry file names and dates). */
async function referenceHunks(dir: string, before: string, after: string): Promise<string> {
  const a = join(dir, 'a')
  const b = join(dir, 'b')
  await writeFile(a, before)
  await writeFile(b, after)
  const out = await promisify(execFile)('diff', ['-u', a, b]).then((r) => r.stdout, (err: { code?: number; stdout?: string }) => {
    if (err.code === 1) return err.stdout ?? ''
    throw err
  })
  return out.split('\n').slice(2).join('\n')
}

const hunks = (patch: string): string => patch.split('\n').filter((l, i) => !(i < 2 && /^(---|\+\+\+) /.test(l))).join('\n')

const TEXTS = {
  start: 'line one\nline two\nline three\nline four\nline five\nline six\nline seven\nline eight\n',
  insert: 'line one\nline two\nline three\nline four\nINSERTED\nline five\nline six\nline seven\nline eight\n',
  delete: 'line one\nline two\nline three\nline four\nline six\nline seven\nline eight\n',
  replace: 'line one\nline 2\nline three\nline four\nline six\nline seven\nline eight, the end',
}

test('diff of a Y.Text between two moments matches GNU diff -u for insert, delete and replace, offline and through a server', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  let now = Math.floor(Date.now() / 1000) * 1000 - 60_000
  const data = join(dir.path, 'data')
  const store = await LevelStore.open(data, { now: () => now })
  const doc = new Y.Doc()
  const text = doc.getText('text')
  const at: Record<string, number> = {}
  const setText = async (next: string): Promise<void> => {
    const before = Y.encodeStateVector(doc)
    const old = text.toString()
    let s = 0
    while (s < old.length && s < next.length && old[s] === next[s]) s++
    let e = 0
    while (e < old.length - s && e < next.length - s && old[old.length - 1 - e] === next[next.length - 1 - e]) e++
    doc.transact(() => {
      text.delete(s, old.length - s - e)
      text.insert(s, next.slice(s, next.length - e))
    })
    await store.append('r', [Y.encodeStateAsUpdate(doc, before)])
  }
  for (const [name, content] of Object.entries(TEXTS)) {
    await setText(content)
    at[name] = now
    now += 2000
  }
  doc.getMap('meta').set('title', 'T')
  await store.append('r', [Y.encodeStateAsUpdate(doc)])
  await store.close()

  const steps: Array<[keyof typeof TEXTS, keyof typeof TEXTS]> = [['start', 'insert'], ['insert', 'delete'], ['delete', 'replace'], ['start', 'replace']]
  const server = await startServer({ dataDir: data, adminToken: 'tok' })
  t.after(() => server.close())
  for (const where of [['--data', data], ['--server', server.httpUrl, '--token', 'tok']]) {
    if (where[0] === '--data') await server.close() // offline first needs the directory free
    for (const [from, to] of steps) {
      const res = await cli(['diff', 'r', '--from', iso(at[from]! + 500), '--to', iso(at[to]! + 500), ...where])
      assert.equal(res.code, 0, res.stderr)
      assert.match(res.out, /^--- text@/)
      assert.equal(hunks(res.out), await referenceHunks(dir.path, TEXTS[from], TEXTS[to]), `${from} → ${to} via ${where[0]}`)
    }
    const same = await cli(['diff', 'r', '--from', iso(at.insert! + 500), '--to', iso(at.insert! + 900), ...where])
    assert.equal(same.out, '', 'no change, no output')
    if (where[0] === '--data') {
      // Reopen for the remote half.
      const again = await startServer({ dataDir: data, adminToken: 'tok' })
      t.after(() => again.close())
      where.splice(0, where.length, '--server', again.httpUrl, '--token', 'tok')
      for (const [from, to] of steps) {
        const res = await cli(['diff', 'r', '--from', iso(at[from]! + 500), '--to', iso(at[to]! + 500), ...where])
        assert.equal(res.code, 0, res.stderr)
        assert.equal(hunks(res.out), await referenceHunks(dir.path, TEXTS[from], TEXTS[to]), `${from} → ${to} via the admin API`)
      }
      // JSON: every changed root (the map too), with before and after.
      const j = await cli(['diff', 'r', '--from', iso(at.replace! + 500), '--format', 'json', ...where])
      assert.equal(j.code, 0, j.stderr)
      const parsed = JSON.parse(j.out) as { changed: Array<{ root: string; before: unknown; after: unknown }> }
      assert.deepEqual(parsed.changed.map((c) => [c.root, c.before, c.after]), [['meta', null, { title: 'T' }]])
      // Bad input: usage errors exit 2, a root that is not text exits 1 with NOT_TEXT.
      assert.equal((await cli(['diff', 'r', ...where])).code, 2)
      assert.equal((await cli(['diff', 'r', '--from', 'yesterday-ish', ...where])).code, 2)
      assert.equal((await cli(['diff', 'r', '--from', '1m', '--format', 'xml', ...where])).code, 2)
      const notText = await cli(['diff', 'r', '--from', iso(at.start! + 500), '--name', 'meta', ...where])
      assert.equal(notText.code, 1)
      assert.match(notText.stderr, /NOT_TEXT|not a Y\.Text/)
      break
    }
  }
})
