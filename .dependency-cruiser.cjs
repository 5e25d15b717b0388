/**
 * The import rules of coedit's sources, checked by dependency-cruiser: `npm run lint:deps`, and
 * test/layout.test.ts (so `npm test` fails on a violation).
 *
 * server/ is folders by concern, layered; each folder's README.md says what it may import, and
 * MAY_IMPORT below is the same list. Only the entry points (server.ts, index.ts, config.ts)
 * import across the whole tree; errors.ts and log.ts are leaves every folder may use.
 * README.md "Architecture" draws it.
 */

/** Each folder of server/ and the other folders it may import (from the top layer down). */
const MAY_IMPORT = {
  http: ['observability', 'embedding', 'operator', 'transport', 'room', 'persistence', 'base'],
  embedding: ['operator', 'transport', 'room', 'persistence', 'base'],
  observability: ['transport', 'room', 'persistence', 'base'],
  operator: ['room', 'persistence', 'base'],
  cluster: ['room', 'persistence', 'base'],
  transport: ['room', 'base'],
  room: ['persistence', 'base'],
  persistence: ['base'],
  base: [],
}
const FOLDERS = Object.keys(MAY_IMPORT)
/** What any folder may import besides folders: the leaf entry points. */
const LEAVES = ['errors\\.ts$', 'log\\.ts$']

/** One rule per folder: anything in server/ but itself, the folders it may import and the leaves. */
const folderRules = FOLDERS.map((folder) => ({
  name: `layer-${folder}`,
  comment: `server/${folder}/ may import only ${[...MAY_IMPORT[folder].map((f) => `${f}/`), 'errors.ts', 'log.ts'].join(', ')} (server/${folder}/README.md)`,
  severity: 'error',
  from: { path: `^server/${folder}/` },
  to: {
    path: '^server/',
    pathNot: `^server/(?:${[folder, ...MAY_IMPORT[folder]].map((f) => `${f}/`).concat(LEAVES).join('|')})`,
  },
}))

/** A package that only the named server modules may import (a heavy dependency, one owner). */
function onlyImportedBy(name, pkg, importers, comment) {
  return { name, comment, severity: 'error', from: { path: '^server/', pathNot: importers }, to: { path: `(?:^|/)node_modules/${pkg}/` } }
}

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No file imports itself through others: a cycle makes load order matter and hides layers.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-orphans',
      comment: 'A source nothing imports and that imports nothing is dead, or wired in a way this cannot see.',
      severity: 'error',
      from: { orphan: true, pathNot: ['(^|/)\\.[^/]+\\.(?:c|m)?js$', '\\.d\\.ts$'] },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing (a path left behind by a move).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'not-to-test',
      comment: 'What the package ships (server/, scripts/ but the bench, web/) never imports the tests; the bench shares their seeded PRNG.',
      severity: 'error',
      from: { path: '^(?:server|scripts|web)/', pathNot: '^scripts/bench/' },
      to: { path: '^test/' },
    },
    {
      name: 'unknown-folder',
      comment: 'A folder of server/ this file does not know: give it a README.md and a MAY_IMPORT entry.',
      severity: 'error',
      from: { path: '^server/[^/]+/', pathNot: `^server/(?:${FOLDERS.join('|')})/` },
      to: {},
    },
    ...folderRules,
    {
      name: 'entry-points-are-not-imported',
      comment: 'The composition (server.ts), the public API (index.ts) and the options (config.ts) import the folders, never the reverse.',
      severity: 'error',
      from: { path: '^server/[^/]+/' },
      to: { path: '^server/(?:server|index|config)\\.ts$' },
    },
    {
      name: 'leaves-import-no-server-module',
      comment: 'errors.ts and log.ts are leaves: every folder may import them because they import nothing of server/.',
      severity: 'error',
      from: { path: '^server/(?:errors|log)\\.ts$' },
      to: { path: '^server/' },
    },
    {
      name: 'room-sees-the-store-interface',
      comment: 'room/ knows a store by its interface (store.ts) and reads tombstones (tombstone.ts), never a concrete store (server/room/README.md).',
      severity: 'error',
      from: { path: '^server/room/' },
      to: { path: '^server/persistence/', pathNot: '^server/persistence/(?:store|tombstone)\\.ts$' },
    },
    {
      name: 'concrete-stores-by-the-composition',
      comment: 'Concrete stores are named only by server.ts, index.ts, the CLI and tests (server/persistence/README.md).',
      severity: 'error',
      from: { path: '^server/', pathNot: ['^server/(?:server|index)\\.ts$', '^server/persistence/'] },
      to: { path: '^server/persistence/(?:leveldb|postgres|memory)\\.ts$' },
    },
    {
      name: 'cluster-mode-loads-on-demand',
      comment: 'pg and ioredis add ~20 MB to every process: server/ reaches cluster/ and the PostgreSQL store by a dynamic import (or for types) only.',
      severity: 'error',
      from: { path: '^server/', pathNot: ['^server/cluster/', '^server/persistence/postgres\\.ts$'] },
      to: { path: '^server/(?:cluster/|persistence/postgres\\.ts$)', dependencyTypesNot: ['dynamic-import', 'type-only'] },
    },
    onlyImportedBy('ws-only-in-transport', 'ws', '^server/transport/(transport|connection)\\.ts$',
      'transport/transport.ts and transport/connection.ts are the only server modules that import ws (server/transport/README.md).'),
    onlyImportedBy('ioredis-only-in-the-bus', 'ioredis', '^server/cluster/bus\\.ts$',
      'cluster/bus.ts is the only server module that imports ioredis (server/cluster/README.md).'),
    {
      name: 'web-imports-only-the-codec',
      comment: 'The browser bundle takes from server/ only the pure codec and the room path spelling (server/room/README.md).',
      severity: 'error',
      from: { path: '^web/' },
      to: { path: '^server/', pathNot: '^server/room/(?:protocol|room-path)\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // The bench's peer servers are a package of their own, with their own node_modules.
    exclude: { path: '^scripts/bench/peers/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
}
