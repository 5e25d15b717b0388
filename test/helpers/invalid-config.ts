/**
 * Option combinations coedit refuses, one table for both ways in: `coedit serve` (flags and
 * environment, exit 2 with one line) and `startServer` (rejects with `code` before opening
 * anything). test/config.test.ts runs every case both ways, so the two cannot drift apart.
 */
import type { StartOptions } from '../../server/server.js'
import type { ErrorCode } from '../../server/errors.js'

export interface InvalidConfig {
  what: string
  /** `coedit serve` arguments. */
  args: string[]
  env?: Record<string, string>
  /** The same configuration given to startServer. */
  options: StartOptions
  code: ErrorCode
  /** What the one line of the CLI, and the error's message, mention. */
  mention: string
}

const SECRET = 'x'.repeat(32)
const REDIS = 'redis://127.0.0.1:1'
const POSTGRES = 'postgres://127.0.0.1:1/none'

export const INVALID_CONFIGS: readonly InvalidConfig[] = [
  { what: 'redis without postgres', args: ['--redis', REDIS], options: { redis: REDIS }, code: 'CLUSTER_INCOMPLETE', mention: '--redis and --postgres go together' },
  { what: 'postgres without redis', args: [], env: { POSTGRES_URL: POSTGRES }, options: { postgres: POSTGRES }, code: 'CLUSTER_INCOMPLETE', mention: '--redis and --postgres go together' },
  { what: 'webhooks without a secret', args: ['--webhook', 'http://a.example/x'], options: { webhook: 'http://a.example/x' }, code: 'WEBHOOK_SECRET_TOO_SHORT', mention: '--webhook needs --webhook-secret' },
  { what: 'a webhook secret under 32 bytes', args: ['--webhook', 'http://a.example/x', '--webhook-secret', 'short'], options: { webhook: 'http://a.example/x', webhookSecret: 'short' }, code: 'WEBHOOK_SECRET_TOO_SHORT', mention: 'at least 32 bytes' },
  { what: 'a whsec_ secret that is not base64', args: ['--webhook-secret', 'whsec_not base64!'], options: { webhookSecret: 'whsec_not base64!' }, code: 'WEBHOOK_SECRET_INVALID', mention: 'after whsec_ comes base64' },
  { what: 'a TLS certificate without its key', args: ['--tls-cert', '/nonexistent/cert.pem'], options: { tlsCert: '/nonexistent/cert.pem' }, code: 'TLS_INCOMPLETE', mention: '--tls-cert and --tls-key go together' },
  { what: 'a TLS key without its certificate', args: [], env: { TLS_KEY: '/nonexistent/key.pem' }, options: { tlsKey: '/nonexistent/key.pem' }, code: 'TLS_INCOMPLETE', mention: '--tls-cert and --tls-key go together' },
  { what: 'both a token secret and a public key', args: ['--auth-secret', SECRET, '--auth-public-key', '/nonexistent/key.pem'], options: { authSecret: SECRET, authPublicKey: '/nonexistent/key.pem' }, code: 'AUTH_OPTIONS_EXCLUSIVE', mention: 'are exclusive' },
  { what: 'a token secret under 32 bytes', args: ['--auth-secret', 'short'], options: { authSecret: 'short' }, code: 'AUTH_SECRET_TOO_SHORT', mention: '--auth-secret must be at least 32 bytes' },
  { what: 'a token secret under 32 bytes, from the environment', args: [], env: { AUTH_SECRET: 'short' }, options: { authSecret: 'short' }, code: 'AUTH_SECRET_TOO_SHORT', mention: 'at least 32 bytes' },
  { what: 'a room-name pattern that is not a regular expression', args: ['--room-name-pattern', '('], options: { roomNamePattern: '(' }, code: 'BAD_ROOM_NAME_PATTERN', mention: '--room-name-pattern' },
]
