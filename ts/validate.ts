// Checks shared by the queue's methods: bad input is refused before it reaches the core.
import { MonqueError } from './errors'
import type { JobId } from './types'

/** A job id as the hex string the core takes. */
export function idString(id: JobId): string {
  if (typeof id === 'string') return id
  if (id && typeof (id as { toHexString?: unknown }).toHexString === 'function') return id.toHexString()
  throw new MonqueError('INVALID_JOB_ID', 'job id must be a 24-character hex string or an ObjectId')
}

/** A time given as a `Date` or epoch ms, as epoch ms; undefined stays undefined. */
export function epochMs(value: Date | number | undefined, key: string): number | undefined {
  if (value === undefined) return undefined
  const ms = value instanceof Date ? value.getTime() : value
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new MonqueError('INVALID_OPTION', `${key} must be a valid Date or epoch milliseconds`)
  }
  return ms
}

/** The `uniqueKey` and `priority` that enqueue and schedule options share. */
export function checkKeyAndPriority(options: { uniqueKey?: unknown; priority?: unknown }): void {
  if (options.uniqueKey !== undefined && typeof options.uniqueKey !== 'string') {
    throw new MonqueError('INVALID_OPTION', 'uniqueKey must be a string')
  }
  if (options.priority !== undefined && !Number.isInteger(options.priority)) {
    throw new MonqueError('INVALID_OPTION', 'priority must be an integer')
  }
}

/** A misspelt key would silently widen a listing or a bulk call: refuse it. */
export function onlyKeys(value: object, allowed: string[], what: string): void {
  if (value === null || typeof value !== 'object') throw new MonqueError('INVALID_OPTION', `${what} must be an object`)
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new MonqueError('INVALID_OPTION', `unknown key \`${key}\` in ${what}; expected one of ${allowed.join(', ')}`)
    }
  }
}

/** NaN and Infinity would become `null` in JSON and silently fall back to defaults. */
export function checkOptions(options: Record<string, unknown>): void {
  if (options === null || typeof options !== 'object') throw new MonqueError('INVALID_OPTION', 'options must be an object')
  for (const [key, value] of Object.entries(options)) {
    if (typeof value === 'number' && (!Number.isFinite(value) || value < 0)) {
      throw new MonqueError('INVALID_OPTION', `invalid option \`${key}\`: must be a finite, non-negative number`)
    }
    if (key === 'jobRetention' && value !== undefined) {
      if (value === null || typeof value !== 'object') throw new MonqueError('INVALID_OPTION', 'jobRetention must be an object of durations in ms')
      onlyKeys(value, ['completed', 'failed', 'cancelled'], 'jobRetention')
      checkOptions(value as Record<string, unknown>)
    }
    if ((key === 'limiter' || key === 'groupLimiter') && value !== undefined) {
      const limiter = value as { max?: unknown; duration?: unknown } | null
      if (limiter === null || typeof limiter !== 'object') throw new MonqueError('INVALID_OPTION', `${key} must be { max, duration }`)
      onlyKeys(limiter, ['max', 'duration'], key)
      if (typeof limiter.max !== 'number' || !Number.isInteger(limiter.max) || limiter.max < 1) {
        throw new MonqueError('INVALID_OPTION', `invalid option \`${key}.max\`: must be a whole number of jobs, at least 1`)
      }
      if (typeof limiter.duration !== 'number' || !Number.isFinite(limiter.duration) || limiter.duration < 1) {
        throw new MonqueError('INVALID_OPTION', `invalid option \`${key}.duration\`: must be a number of ms, at least 1`)
      }
    }
    if (key === 'groupConcurrency' && value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 1)) {
      throw new MonqueError('INVALID_OPTION', 'invalid option `groupConcurrency`: must be a whole number, at least 1')
    }
  }
}
