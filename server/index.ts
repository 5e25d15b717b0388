/** Public API of the `coedit` package. */
export { startServer, type CoeditServer, type StartOptions } from './server.js'
export { DEFAULT_CONFIG, type ServerConfig } from './config.js'
export type { Store, StoredRoom, RoomInfo } from './persistence/store.js'
export { LevelStore } from './persistence/leveldb.js'
export { MemoryStore } from './persistence/memory.js'
export { CoeditError } from './errors.js'
export * as closeCodes from './close-codes.js'
export * as protocol from './protocol.js'
