/** Every error monque raises carries a stable `code` (see the README's error table). */
export class MonqueError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'MonqueError'
    this.code = code
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

/** Turns an error from the native core (`[CODE] message`) into a `MonqueError`. */
export function fromNative(err: unknown): MonqueError {
  if (err instanceof MonqueError) return err
  const message = err instanceof Error ? err.message : String(err)
  const match = CODED.exec(message)
  if (match) return new MonqueError(match[1]!, match[2]!, { cause: err })
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
