import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
const [oldMod, newMod] = await Promise.all([import('/tmp/coedit-format1/server/persistence/leveldb.ts'), import('/work/wt/history/server/persistence/leveldb.ts')])
const doc = new Y.Doc(); const ups: Uint8Array[] = []; doc.on('update', (u: Uint8Array) => ups.push(u))
for (let i = 0; i < 40000; i++) doc.getText('t').insert(i, 'x')
async function run(mod: any, sync: boolean): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'cmp-'))
  const store = await mod.LevelStore.open(dir, { sync })
  const t = performance.now()
  for (let i = 0; i < ups.length; i += 200) await Promise.all(ups.slice(i, i + 200).map((u) => store.append('r', [u])))
  const ms = performance.now() - t
  await store.close(); await rm(dir, { recursive: true, force: true })
  return ms
}
for (const sync of [false, true]) {
  const o: number[] = [], n: number[] = []
  for (let r = 0; r < 4; r++) { o.push(await run(oldMod, sync)); n.push(await run(newMod, sync)) }
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1]!
  console.log(`sync=${sync}: 40000 appends in bursts of 200: main ${med(o).toFixed(0)} ms, history ${med(n).toFixed(0)} ms (${((med(n) / med(o) - 1) * 100).toFixed(1)}%)`)
}
