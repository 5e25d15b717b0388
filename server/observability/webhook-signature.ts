/**
 * Webhook signatures in the Standard Webhooks format (https://www.standardwebhooks.com),
 * which receivers have libraries for in most languages:
 *
 *   webhook-id         the delivery id, the same for every retry of one notice
 *   webhook-timestamp  Unix seconds of this attempt
 *   webhook-signature  v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>">
 *
 * The id and timestamp are signed, so a captured request cannot be replayed later (the
 * receiver refuses old timestamps) or passed off as another delivery. The key is the
 * secret's bytes, or, for a secret written `whsec_<base64>` as those libraries hand them
 * out, the bytes the base64 spells.
 *
 * The older `X-Coedit-Signature: sha256=<hex HMAC of the body>` is still sent for one
 * release (it signs neither time nor id: receivers should move to the headers above).
 */
import { createHmac } from 'node:crypto'
import { CoeditError } from '../errors.js'

/** As for --auth-secret: an HMAC-SHA256 key should be at least as long as its hash. */
export const MIN_WEBHOOK_SECRET_BYTES = 32
const STANDARD_PREFIX = 'whsec_'

/** The HMAC key of `secret`; throws WEBHOOK_SECRET_TOO_SHORT (or _INVALID) when it is not usable. */
export function webhookKey(secret: string): Buffer {
  let key: Buffer
  if (secret.startsWith(STANDARD_PREFIX)) {
    const encoded = secret.slice(STANDARD_PREFIX.length)
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
      throw new CoeditError('WEBHOOK_SECRET_INVALID', '--webhook-secret: after whsec_ comes base64 (try: echo whsec_$(openssl rand -base64 32))')
    }
    key = Buffer.from(encoded, 'base64')
  } else {
    key = Buffer.from(secret, 'utf8')
  }
  if (key.length < MIN_WEBHOOK_SECRET_BYTES) {
    throw new CoeditError('WEBHOOK_SECRET_TOO_SHORT', `--webhook-secret must be at least ${MIN_WEBHOOK_SECRET_BYTES} bytes${secret.startsWith(STANDARD_PREFIX) ? ' after base64 decoding' : ''} (try: openssl rand -base64 32)`)
  }
  return key
}

/** The three Standard Webhooks headers of one delivery attempt. */
export function standardSignatureHeaders(key: Buffer, id: string, timestamp: number, body: string): Record<string, string> {
  const seconds = String(Math.floor(timestamp / 1000))
  const mac = createHmac('sha256', key).update(`${id}.${seconds}.${body}`).digest('base64')
  return { 'webhook-id': id, 'webhook-timestamp': seconds, 'webhook-signature': `v1,${mac}` }
}

/** Deprecated `X-Coedit-Signature` value: `sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the secret as written, as before. */
export function legacySignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}
