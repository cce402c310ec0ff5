// The queue's events: native event JSON turned into emitter events and log lines.
import type { EventEmitter } from 'node:events'

import { MonqueError } from './errors'
import { type Job, type JobStatus, toJob } from './job'
import type { Logger } from './types'

/** Event payloads, by event name. */
export interface MonqueEvents {
  'job:start': [job: Job]
  'job:progress': [payload: { id: string; progress: unknown }]
  'job:complete': [payload: { job: Job; duration: number }]
  'job:fail': [payload: { job: Job; error: Error; willRetry: boolean }]
  'job:retry': [payload: { job: Job; nextRunAt: Date; delay: number }]
  'job:snoozed': [payload: { job: Job; nextRunAt: Date; delay: number }]
  'job:error': [payload: { error: Error; job?: Job }]
  'stale:recovered': [payload: { count: number }]
  /** A job's lease expired mid-run and it was recovered; past `maxStalls` it counts as a failure. */
  'job:stalled': [payload: { job: Job; stallCount: number; countedAsFailure: boolean }]
  'jobs:released': [payload: { count: number }]
  /** The server stopped answering; reported once per outage (claims and heartbeats fail until it is back). */
  'server:unreachable': [payload: { error: MonqueError; since: Date }]
  /** The server answers again; `downForMs` is how long it was unreachable, as this instance saw it. */
  'server:reachable': [payload: { downForMs: number }]
  'job:cancelled': [payload: { job: Job }]
  'job:retried': [payload: { job: Job; previousStatus: JobStatus }]
  'job:rescheduled': [payload: { job: Job }]
  'job:priority': [payload: { job: Job }]
  'job:deleted': [payload: { jobId: string }]
  'jobs:cancelled': [payload: { count: number }]
  'jobs:retried': [payload: { count: number }]
  'jobs:deleted': [payload: { count: number }]
  'jobs:expired': [payload: { count: number }]
  'queue:paused': [payload: { name: string | null }]
  'queue:resumed': [payload: { name: string | null }]
  /** Jobs of `name` have been due over a minute and no live instance handles that name. */
  'jobs:orphaned': [payload: { name: string; count: number; oldestDueAt: Date }]
}

/** Warnings and errors to the console; the rest stays quiet. */
const consoleWarnings: Logger = {
  warn: (fields, message) => console.warn(`monque: ${message}`, fields),
  error: (fields, message) => console.error(`monque: ${message}`, fields),
}

/** The logger for the `logger` option: unset means the console's warnings, `false` none. */
export function resolveLogger(logger: Logger | false | undefined): Logger | undefined {
  return logger === undefined ? consoleWarnings : logger || undefined
}

/**
 * Handles one event from the core: an `internal:abort` aborts the running handler's
 * signal (controllers are keyed `<jobId>:<claimId>`); any other is logged and emitted.
 */
export function dispatchEvent(
  emitter: EventEmitter<MonqueEvents>,
  controllers: Map<string, AbortController>,
  logger: Logger | undefined,
  json: string,
): void {
  const event = JSON.parse(json) as Record<string, any>
  const type = event.type as string
  if (type === 'internal:abort') {
    const reason =
      event.reason === 'timeout'
        ? new MonqueError('JOB_TIMEOUT', 'the job ran longer than its timeout')
        : event.reason === 'cancelled'
          ? new MonqueError('JOB_CANCELLED', 'the job was cancelled while it ran')
          : event.reason === 'lease-lost'
            ? new MonqueError('LEASE_LOST', 'this run lost its lease; the job was recovered and its result will not be written')
            : new MonqueError('SHUTDOWN_TIMEOUT', 'shutdown timeout reached')
    controllers.get(event.execution)?.abort(reason)
    // Its result will not be read: a handler that never settles must not keep the entry.
    controllers.delete(event.execution)
    return
  }
  if (logger) log(logger, event)
  const job = event.job ? toJob(event.job) : undefined
  const emit = (payload: unknown) => safeEmit(emitter, type, payload)
  switch (type) {
    case 'job:start':
      return emit(job)
    case 'job:progress':
      return emit({ id: event.id, progress: event.progress })
    case 'job:complete':
      return emit({ job, duration: event.duration })
    case 'job:fail': {
      const error = new Error(event.error)
      // The handler's own stack, as stored on the job; not this dispatch's.
      error.stack = job?.failStack ?? `Error: ${event.error}`
      return emit({ job, error, willRetry: event.willRetry })
    }
    case 'job:retry':
    case 'job:snoozed':
      return emit({ job, nextRunAt: new Date(event.nextRunAt), delay: event.delay })
    case 'job:error':
      return emit({ error: new MonqueError(event.code, event.error), job })
    case 'job:cancelled':
    case 'job:rescheduled':
    case 'job:priority':
      return emit({ job })
    case 'job:retried':
      return emit({ job, previousStatus: event.previousStatus })
    case 'job:deleted':
      return emit({ jobId: event.jobId })
    case 'server:unreachable':
      return emit({ error: new MonqueError(event.code, event.error), since: new Date(event.since) })
    case 'server:reachable':
      return emit({ downForMs: event.downForMs })
    case 'job:stalled':
      return emit({ job, stallCount: event.stallCount, countedAsFailure: event.countedAsFailure })
    case 'queue:paused':
    case 'queue:resumed':
      return emit({ name: event.name ?? null })
    case 'jobs:orphaned':
      return emit({ name: event.name, count: event.count, oldestDueAt: new Date(event.oldestDueAt) })
    default:
      return emit({ count: event.count })
  }
}

/** A listener that throws must not break the worker: report it as `job:error`. */
function safeEmit(emitter: EventEmitter<MonqueEvents>, type: string, payload: unknown): void {
  try {
    ;(emitter.emit as (t: string, p: unknown) => boolean)(type, payload)
  } catch (err) {
    if (type === 'job:error') {
      process.emitWarning(`monque: a job:error listener threw: ${String(err)}`)
    } else {
      safeEmit(emitter, 'job:error', { error: err instanceof Error ? err : new Error(String(err)) })
    }
  }
}

type Level = 'debug' | 'info' | 'warn' | 'error'

/** One structured log line per event. A logger that throws is ignored. */
function log(logger: Logger, event: Record<string, any>): void {
  const job = event.job as Record<string, unknown> | undefined
  const fields: Record<string, unknown> = { event: event.type }
  if (job) Object.assign(fields, { jobId: job.id, name: job.name, status: job.status, failCount: job.failCount })
  let level: Level = 'info'
  let message: string = event.type
  switch (event.type) {
    case 'job:start':
      level = 'debug'
      message = 'job started'
      break
    case 'job:complete':
      level = 'debug'
      message = 'job completed'
      fields.durationMs = event.duration
      break
    case 'job:fail':
      // Retries warn; a final failure is an error, with the handler's stack.
      level = event.willRetry ? 'warn' : 'error'
      message = event.willRetry ? 'job failed; will retry' : 'job failed for good'
      Object.assign(fields, { error: event.error, willRetry: event.willRetry })
      if (!event.willRetry && job?.failStack) fields.stack = job.failStack
      break
    case 'job:retry':
    case 'job:snoozed':
      level = 'debug'
      message = event.type === 'job:retry' ? 'job scheduled for retry' : 'job snoozed'
      Object.assign(fields, { delayMs: event.delay, nextRunAt: new Date(event.nextRunAt) })
      break
    case 'job:error':
      level = 'error'
      message = event.error
      fields.code = event.code
      break
    case 'stale:recovered':
      level = 'warn'
      message = 'recovered jobs whose lease expired'
      fields.count = event.count
      break
    case 'server:unreachable':
      level = 'error'
      message = 'the server is unreachable; claims and heartbeats fail until it is back'
      fields.error = event.error
      break
    case 'server:reachable':
      level = 'warn'
      message = 'the server is reachable again'
      fields.downForMs = event.downForMs
      break
    case 'job:stalled':
      level = 'warn'
      message = event.countedAsFailure ? 'job stalled too often: counted as a failure' : 'job stalled: its worker died or hung; back to pending'
      fields.stallCount = event.stallCount
      break
    case 'jobs:orphaned':
      level = 'warn'
      message = 'due jobs that no live instance handles'
      Object.assign(fields, { queue: event.name, count: event.count, oldestDueAt: new Date(event.oldestDueAt) })
      break
    default:
      if (event.count !== undefined) fields.count = event.count
      if (event.jobId !== undefined) fields.jobId = event.jobId
      if (event.name !== undefined) fields.queue = event.name
  }
  try {
    logger[level]?.(fields, message)
  } catch {
    // A broken logger must not break the queue.
  }
}
