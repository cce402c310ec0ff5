/** Every error monque raises carries a stable `code` (see the README's error table). */
export class MonqueError extends Error {
  readonly code: string
  /**
   * The driver's whole report behind a `CONNECTION_ERROR` or `DATABASE_ERROR` (for
   * example its view of every server); the message itself stays one line.
   */
  readonly detail?: string

  constructor(code: string, message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options)
    this.name = 'MonqueError'
    this.code = code
    if (options?.detail !== undefined) this.detail = options.detail
  }
}

/**
 * Throw this from a handler to fail the job at once, without retries
 * (for input that will never succeed).
 */
export class UnrecoverableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UnrecoverableError'
  }
}

const CODED = /^\[([A-Z_]+)\] ([\s\S]*)$/
/** Between the message and the detail of a native error (src/node/mod.rs). */
const DETAIL = '\n\u001edetail: '

/** Turns an error from the native core (`[CODE] message`) into a `MonqueError`. */
export function fromNative(err: unknown): MonqueError {
  if (err instanceof MonqueError) return err
  const full = err instanceof Error ? err.message : String(err)
  const cut = full.indexOf(DETAIL)
  const message = cut < 0 ? full : full.slice(0, cut)
  const detail = cut < 0 ? undefined : full.slice(cut + DETAIL.length)
  const match = CODED.exec(message)
  if (match) return new MonqueError(match[1]!, match[2]!, detail === undefined ? { cause: err } : { cause: err, detail })
  return new MonqueError('INTERNAL_ERROR', message, { cause: err })
}

/** Runs a native call, rethrowing its error as a `MonqueError`. */
export async function callNative<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw fromNative(err)
  }
}

export function callNativeSync<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}
