/** An error with a stable `code` that callers and tests match on instead of message text. */
export class CoeditError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CoeditError'
    this.code = code
  }
}
