import { EventEmitter } from 'node:events'

import { Connection, resolveConnection } from './connection'
import { encodeData } from './data'
import { callNative, callNativeSync, MonqueError, UnrecoverableError } from './errors'
import { Job, JobStatus, RunningJob, toJob } from './job'
import { connect, NativeQueue, validateJobName } from './native'

/** Options for `new Monque(connection, options)`. Durations are milliseconds. */
/** Longest `job.snooze()` delay: one year. */
const MAX_SNOOZE_MS = 365 * 86_400_000

export interface MonqueOptions {
  /** Collection holding the jobs. Default `monque_jobs`. */
  collectionName?: string
  /** Database to use when the connection names none. Default: the URI's, else `monque`. */
  database?: string
  /** How often idle workers poll for due jobs. Default 1000. */
  pollInterval?: number
  /** Default concurrency of each worker on this instance. Default 5. */
  workerConcurrency?: number
  /** Cap on jobs of all names running at once on this instance. Default: none. */
  instanceConcurrency?: number
  /** Most jobs one claim takes when a worker has several free slots. Default 32; 1 claims one job per round trip. */
  claimBatch?: number
  /** Retries after the first attempt before a job is `failed`. Default 10. */
  maxRetries?: number
  /** Retry `n` waits `2^n × baseRetryInterval`. Default 60000. */
  baseRetryInterval?: number
  /** Longest retry delay. Default 86400000 (24 h). */
  maxBackoffDelay?: number
  /** Up to this fraction of each delay is added at random. Default 0.1. */
  jitter?: number
  /** How long a claim is valid without a heartbeat. Default 30000. */
  leaseDuration?: number
  /** How often leases are renewed and expired ones recovered. Default 10000. */
  heartbeatInterval?: number
  /** How long `stop()` waits for running handlers. Default 30000. */
  shutdownTimeout?: number
  /** Largest job data accepted, as JSON bytes. Default 1048576. */
  maxPayloadSize?: number
  /** Largest handler result stored on the job, as JSON bytes. Default 65536; larger results are not stored (`RESULT_NOT_STORED`). */
  maxResultSize?: number
  /** How long to wait for a reachable server before failing. Default 10000. */
  serverSelectionTimeout?: number
  /** Wake workers through a change stream when the server offers one. Default true. */
  changeStreams?: boolean
  /** This instance's `claimedBy`. Default `<host>:<pid>:<random>`. */
  instanceId?: string
  /** How long finished jobs are kept (ms) per final status; unset keeps them forever. */
  jobRetention?: { completed?: number; failed?: number; cancelled?: number }
  /** How often a started instance deletes jobs past `jobRetention`. Default 60000. */
  retentionInterval?: number
  /** Create no indexes in `initialize()` (you manage them). Default false. */
  skipIndexCreation?: boolean
  /**
   * Receives the queue's events as structured log lines: `logger[level](fields, message)`
   * (console, pino, the Ts.ED logger...). Default: warnings and errors to the console;
   * `false` silences it.
   */
  logger?: Logger | false
}

/** Any object with these methods taking `(fields, message)`: console, pino, the Ts.ED logger. */
export interface Logger {
  debug?(fields: Record<string, unknown>, message: string): void
  info?(fields: Record<string, unknown>, message: string): void
  warn?(fields: Record<string, unknown>, message: string): void
  error?(fields: Record<string, unknown>, message: string): void
}

/** Which jobs a listing or bulk operation is about. Bulk operations refuse an empty one. */
export interface JobSelector {
  name?: string
  status?: JobStatus | JobStatus[]
  /** Created before this time. */
  olderThan?: Date | number
  /** Created after this time. */
  newerThan?: Date | number
}

export interface GetJobsOptions extends JobSelector {
  /** 1-1000, default 100. */
  limit?: number
  skip?: number
  /** Leave `data` out (it comes back as `null`): cheap listings for dashboards. */
  withoutData?: boolean
}

export interface CursorOptions {
  /** A `nextCursor` / `prevCursor` from a previous page. */
  cursor?: string
  /** 1-1000, default 50. */
  limit?: number
  /** `forward` (default) pages after the cursor, `backward` before it. */
  direction?: 'forward' | 'backward'
  /** By creation: `asc` (default, oldest first) or `desc`. */
  sort?: 'asc' | 'desc'
  filter?: JobSelector
  withoutData?: boolean
}

export interface JobPage<T = unknown> {
  jobs: Job<T>[]
  nextCursor: string | null
  prevCursor: string | null
  hasNext: boolean
  hasPrev: boolean
}

export interface QueueStats {
  /** Jobs whose dependencies have not all completed. */
  waiting: number
  pending: number
  processing: number
  completed: number
  failed: number
  cancelled: number
  total: number
  /** Mean time from start to finish of completed jobs, in ms; null with none completed. */
  avgProcessingMs: number | null
}

/** A job id: its hex string or an ObjectId. */
export type JobId = string | { toHexString(): string }

export interface EnqueueOptions {
  /** At most one pending/processing job per (name, uniqueKey); duplicates return it. */
  uniqueKey?: string
  /** Do not run before this time. */
  runAt?: Date | number
  /** Higher runs first among due jobs of one name. Default 0. */
  priority?: number
  /** Longest one run of this job may take, in ms; overrides the worker's `timeout`. */
  timeout?: number
  /**
   * Jobs that must complete first (at most 100, existing, not recurring). Until then the
   * job is `waiting`; if one of them fails, is cancelled or deleted, it fails too. Not
   * with `uniqueKey`, not in `enqueueMany`.
   */
  dependsOn?: JobId[]
}

export interface ScheduleOptions {
  /** IANA timezone the cron expression is read in, e.g. `Europe/Berlin`. Default `UTC`. Cron only. */
  timezone?: string
  /** Tells several schedules of one name apart. Default `schedule:<name>`. */
  uniqueKey?: string
  /** Priority of each run. Default 0. */
  priority?: number
}

export interface WorkerOptions {
  /** Jobs of this name running at once on this instance. Default `workerConcurrency`. */
  concurrency?: number
  /** Overrides `maxRetries` for this job name. */
  maxRetries?: number
  /** Replace an already registered handler instead of throwing `WORKER_EXISTS`. */
  replace?: boolean
  /**
   * Longest one run may take, in ms. Past it `job.signal` aborts (reason code
   * `JOB_TIMEOUT`), `job:error` reports `JOB_TIMEOUT` and the run counts as a failure,
   * retried with backoff. Default: no limit.
   */
  timeout?: number
  /**
   * At most `max` jobs of this name start per `duration` ms, counted across every
   * instance through MongoDB (a fixed window). Default: no limit.
   */
  limiter?: { max: number; duration: number }
}

export type Handler<T = any> = (job: RunningJob<T>) => unknown | Promise<unknown>

export interface EnqueueManyItem<T = unknown> {
  name: string
  data: T
  options?: EnqueueOptions
}

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
  'jobs:released': [payload: { count: number }]
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
}

export type NotifyMode = 'off' | 'polling' | 'change-stream'

/** A MongoDB-backed job queue whose engine runs in Rust. */
export class Monque extends EventEmitter<MonqueEvents> {
  private readonly target: { uri: string; database?: string }
  private readonly options: MonqueOptions
  private native?: NativeQueue
  private connecting?: Promise<NativeQueue>
  private readonly pending = new Map<string, { handler: Handler; options: WorkerOptions }>()
  /** Abort controllers of running handlers, by `<jobId>:<claimId>`. */
  private readonly controllers = new Map<string, AbortController>()
  private keepAlive?: NodeJS.Timeout
  private readonly logger?: Logger

  constructor(connection: Connection, options: MonqueOptions = {}) {
    super()
    this.target = resolveConnection(connection)
    const { logger, ...coreOptions } = options
    this.logger = logger === undefined ? consoleWarnings : logger || undefined
    this.options = coreOptions
    if (this.target.database && !options.database) this.options.database = this.target.database
    checkOptions(this.options as Record<string, unknown>)
  }

  /** Connects, creates indexes and recovers expired leases. Idempotent. */
  async initialize(): Promise<void> {
    const native = await this.connectOnce()
    await callNative(() => native.initialize())
  }

  /** Adds a job. Returns it; with a `uniqueKey` already active, returns that job instead. */
  async enqueue<T>(name: string, data: T, options: EnqueueOptions = {}): Promise<Job<T>> {
    const json = encodeData(data)
    const opts = encodeEnqueueOptions(options)
    const native = await this.connectOnce()
    const job = await callNative(() => native.enqueue(name, json, opts))
    return toJob<T>(JSON.parse(job))
  }

  /** Adds a job to run as soon as a worker is free. */
  now<T>(name: string, data: T): Promise<Job<T>> {
    return this.enqueue(name, data)
  }

  /** Adds many jobs in one round trip (two if some have a uniqueKey). All or nothing on bad input. */
  async enqueueMany(jobs: EnqueueManyItem[]): Promise<{ inserted: number; deduplicated: number }> {
    if (!Array.isArray(jobs)) throw new MonqueError('INVALID_DATA', 'enqueueMany takes an array of { name, data, options }')
    const items = jobs.map((j, i) => {
      if (!j || typeof j.name !== 'string') throw new MonqueError('INVALID_JOB_NAME', `jobs[${i}].name must be a string`)
      return `{"name":${JSON.stringify(j.name)},"data":${encodeData(j.data, `jobs[${i}].data`)},"options":${encodeEnqueueOptions(j.options ?? {})}}`
    })
    const native = await this.connectOnce()
    return JSON.parse(await callNative(() => native.enqueueMany(`[${items.join(',')}]`)))
  }

  /**
   * Runs `name` on a cron schedule (5 fields such as `0 9 * * 1-5`, 6 with seconds, or `@daily`-style
   * macros) in `options.timezone`. Idempotent: calling it on every start, from any number of
   * processes, leaves one schedule per (name, uniqueKey); a new expression, timezone, data or
   * priority updates it. Returns the recurring job.
   */
  async schedule<T>(cron: string, name: string, data?: T, options: ScheduleOptions = {}): Promise<Job<T>> {
    if (typeof cron !== 'string') throw new MonqueError('INVALID_CRON', 'cron expression must be a string')
    const json = encodeData(data ?? {})
    const opts = encodeScheduleOptions(options)
    const native = await this.connectOnce()
    return toJob<T>(JSON.parse(await callNative(() => native.schedule(cron, name, json, opts))))
  }

  /**
   * Runs `name` every `interval`: milliseconds, or a string such as `'5 minutes'` or `'1h 30m'`
   * (at least one second). The first run is one interval from now. Idempotent like `schedule`.
   */
  async every<T>(interval: number | string, name: string, data?: T, options: ScheduleOptions = {}): Promise<Job<T>> {
    let text: string
    if (typeof interval === 'number') {
      if (!Number.isFinite(interval) || interval <= 0) {
        throw new MonqueError('INVALID_INTERVAL', `interval must be a positive number of milliseconds, got ${interval}`)
      }
      text = `${interval}ms`
    } else if (typeof interval === 'string') {
      text = interval
    } else {
      throw new MonqueError('INVALID_INTERVAL', 'interval must be milliseconds or a string such as "5 minutes"')
    }
    const json = encodeData(data ?? {})
    const opts = encodeScheduleOptions(options)
    const native = await this.connectOnce()
    return toJob<T>(JSON.parse(await callNative(() => native.every(text, name, json, opts))))
  }

  /**
   * Stops the schedule (name, uniqueKey). A pending run is cancelled; a running one finishes
   * and is not rescheduled. Resolves false when there was no such schedule.
   */
  async unschedule(name: string, uniqueKey?: string): Promise<boolean> {
    if (uniqueKey !== undefined && typeof uniqueKey !== 'string') {
      throw new MonqueError('INVALID_OPTION', 'uniqueKey must be a string')
    }
    const native = await this.connectOnce()
    return callNative(() => native.unschedule(name, uniqueKey))
  }

  /** The active schedules (recurring jobs), soonest first; of every name or of `name`. */
  async listSchedules(name?: string): Promise<Job[]> {
    const native = await this.connectOnce()
    const jobs = JSON.parse(await callNative(() => native.listSchedules(name))) as Record<string, unknown>[]
    return jobs.map((j) => toJob(j))
  }

  /** The job with this id, or null. */
  async getJob<T = unknown>(id: JobId): Promise<Job<T> | null> {
    const native = await this.connectOnce()
    const json = await callNative(() => native.getJob(idString(id)))
    return json === null ? null : toJob<T>(JSON.parse(json))
  }

  /** Jobs matching the selector, oldest first, paged with `skip` / `limit`. */
  async getJobs<T = unknown>(options: GetJobsOptions = {}): Promise<Job<T>[]> {
    onlyKeys(options, ['name', 'status', 'olderThan', 'newerThan', 'limit', 'skip', 'withoutData'], 'getJobs options')
    const { limit, skip, withoutData, ...selector } = options
    const query = JSON.stringify({ ...encodeSelector(selector), limit, skip, withoutData })
    const native = await this.connectOnce()
    return parseJobs<T>(await callNative(() => native.getJobs(query)))
  }

  /** One page of a keyset-paginated listing, stable in both directions. */
  async getJobsWithCursor<T = unknown>(options: CursorOptions = {}): Promise<JobPage<T>> {
    onlyKeys(options, ['cursor', 'limit', 'direction', 'sort', 'filter', 'withoutData'], 'getJobsWithCursor options')
    const query = JSON.stringify({ ...options, filter: options.filter && encodeSelector(options.filter) })
    const native = await this.connectOnce()
    const page = JSON.parse(await callNative(() => native.getJobsWithCursor(query)))
    return { ...page, jobs: page.jobs.map((j: Record<string, unknown>) => toJob<T>(j)) }
  }

  /** Jobs per status, total and mean processing time; of every name or of `options.name`. */
  async getQueueStats(options: { name?: string } = {}): Promise<QueueStats> {
    const native = await this.connectOnce()
    return JSON.parse(await callNative(() => native.getQueueStats(options.name)))
  }

  /**
   * Cancels a pending or running job (`INVALID_TRANSITION` otherwise) and frees its uniqueKey.
   * A running job becomes `cancelled` at once and its `job.signal` aborts (`JOB_CANCELLED`) on
   * whichever process runs it: at once via a change stream, else on that worker's next heartbeat.
   */
  cancelJob<T = unknown>(id: JobId): Promise<Job<T>> {
    return this.changeJob<T>(id, 'cancel')
  }

  /** Puts a failed or cancelled job back to pending, due now, with `failCount` 0. */
  retryJob<T = unknown>(id: JobId): Promise<Job<T>> {
    return this.changeJob<T>(id, 'retry')
  }

  /** Gives a pending job a new run time. */
  rescheduleJob<T = unknown>(id: JobId, runAt: Date | number): Promise<Job<T>> {
    return this.changeJob<T>(id, 'reschedule', runAt instanceof Date ? runAt.getTime() : runAt)
  }

  /** Gives a pending job a new priority. */
  setJobPriority<T = unknown>(id: JobId, priority: number): Promise<Job<T>> {
    return this.changeJob<T>(id, 'priority', priority)
  }

  /** Deletes a job that is not running. Resolves false if there was none. */
  async deleteJob(id: JobId): Promise<boolean> {
    const native = await this.connectOnce()
    return callNative(() => native.deleteJob(idString(id)))
  }

  /** Cancels the pending jobs the selector matches; an empty selector is refused. */
  cancelJobs(selector: JobSelector): Promise<number> {
    return this.changeJobs('cancel', selector)
  }

  /**
   * Retries the failed / cancelled jobs the selector matches (the dead-letter redrive),
   * their run times spread over `spread` ms (default 10000) so they do not stampede.
   */
  retryJobs(selector: JobSelector, options: { spread?: number } = {}): Promise<number> {
    return this.changeJobs('retry', selector, options.spread)
  }

  /** Deletes the jobs the selector matches, except running ones. */
  deleteJobs(selector: JobSelector): Promise<number> {
    return this.changeJobs('delete', selector)
  }

  /** Stops claiming `name` (or everything) on every instance; running jobs finish. */
  async pause(name?: string): Promise<void> {
    const native = await this.connectOnce()
    await callNative(() => native.pause(name))
  }

  /** Undoes `pause(name)` (or the queue-wide pause). */
  async resume(name?: string): Promise<void> {
    const native = await this.connectOnce()
    await callNative(() => native.resume(name))
  }

  /** Whether `name` is paused, by its own pause or the queue-wide one. */
  async isPaused(name?: string): Promise<boolean> {
    const native = await this.connectOnce()
    return callNative(() => native.isPaused(name))
  }

  /** Deletes the jobs past `jobRetention` now; started instances also do it periodically. */
  async purgeExpired(): Promise<number> {
    const native = await this.connectOnce()
    return callNative(() => native.purgeExpired())
  }

  /** Metrics in the Prometheus text format (serve it as `text/plain; version=0.0.4`). */
  async metrics(): Promise<string> {
    const native = await this.connectOnce()
    return callNative(() => native.metrics())
  }

  private async changeJob<T>(id: JobId, action: string, value?: number): Promise<Job<T>> {
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
      throw new MonqueError('INVALID_OPTION', `${action === 'priority' ? 'priority' : 'runAt'} must be a finite number`)
    }
    const native = await this.connectOnce()
    return toJob<T>(JSON.parse(await callNative(() => native.changeJob(idString(id), action, value))))
  }

  private async changeJobs(action: string, selector: JobSelector, spread?: number): Promise<number> {
    if (spread !== undefined) checkOptions({ spread })
    const json = JSON.stringify(encodeSelector(selector))
    const native = await this.connectOnce()
    return callNative(() => native.changeJobs(action, json, spread))
  }

  /** Registers the handler for jobs named `name`. A throw or rejection is a failure. */
  register<T = any>(name: string, handler: Handler<T>, options: WorkerOptions = {}): this {
    if (typeof name !== 'string') throw new MonqueError('INVALID_JOB_NAME', 'job name must be a string')
    callNativeSync(() => validateJobName(name))
    if (typeof handler !== 'function') {
      throw new MonqueError('INVALID_HANDLER', `handler for "${name}" must be a function, got ${typeof handler}`)
    }
    checkOptions(options as Record<string, unknown>)
    if (!options.replace && this.pending.has(name)) {
      throw new MonqueError('WORKER_EXISTS', `a worker for job \`${name}\` is already registered; pass \`replace: true\` to swap it`)
    }
    this.pending.set(name, { handler: handler as Handler, options })
    if (this.native) this.attach(this.native, name, handler as Handler, options)
    return this
  }

  /** Alias of `register`, as the original monque names it. */
  worker<T = any>(name: string, handler: Handler<T>, options: WorkerOptions = {}): this {
    return this.register(name, handler, options)
  }

  /** Starts processing. Requires `initialize()`. Keeps the process alive until `stop()`. */
  start(): void {
    const native = this.native
    if (!native) throw new MonqueError('NOT_INITIALIZED', 'call and await initialize() before start()')
    callNativeSync(() => native.start())
    this.keepAlive ??= setInterval(() => {}, 1 << 30)
  }

  /**
   * Stops claiming, waits up to `timeout` ms (default `shutdownTimeout`) for running
   * handlers, then aborts their `job.signal` and hands their jobs back to `pending`.
   * Resolves with the number of jobs handed back.
   */
  async stop(options: { timeout?: number } = {}): Promise<number> {
    if (options.timeout !== undefined) checkOptions({ timeout: options.timeout })
    const native = this.native
    clearInterval(this.keepAlive)
    this.keepAlive = undefined
    if (!native) return 0
    return callNative(() => native.stop(options.timeout))
  }

  /** True when started and the server answers. */
  async isHealthy(): Promise<boolean> {
    return this.native ? this.native.isHealthy() : false
  }

  /** How idle workers learn of new jobs: `change-stream`, `polling`, or `off` when stopped. */
  get notifyMode(): NotifyMode {
    return (this.native?.notifyMode() ?? 'off') as NotifyMode
  }

  private connectOnce(): Promise<NativeQueue> {
    this.connecting ??= (async () => {
      const native = await callNative(() => connect(this.target.uri, JSON.stringify(this.options)))
      native.onEvent((json) => this.dispatch(json))
      for (const [name, { handler, options }] of this.pending) this.attach(native, name, handler, options)
      this.native = native
      return native
    })().catch((err) => {
      this.connecting = undefined
      throw err
    })
    return this.connecting
  }

  private attach(native: NativeQueue, name: string, handler: Handler, options: WorkerOptions): void {
    const run = async (jobJson: string): Promise<string> => {
      const raw = JSON.parse(jobJson) as Record<string, unknown>
      // Job id and claim id together name one execution (a batch claim shares its claim id).
      const execution = `${String(raw.id)}:${String(raw.claimId)}`
      const controller = new AbortController()
      this.controllers.set(execution, controller)
      const job = toJob(raw) as RunningJob
      job.signal = controller.signal
      const claimId = String(raw.claimId)
      job.updateProgress = (value: unknown) => {
        const json = encodeData(value, 'progress')
        return callNative(() => native.updateProgress(job.id, claimId, json))
      }
      let snoozeMs: number | undefined
      job.snooze = (delay: number) => {
        if (typeof delay !== 'number' || !Number.isFinite(delay) || delay <= 0 || delay > MAX_SNOOZE_MS) {
          throw new MonqueError('INVALID_OPTION', `snooze delay must be a number of ms in (0, ${MAX_SNOOZE_MS}]`)
        }
        snoozeMs = Math.ceil(delay)
      }
      let result: unknown
      try {
        result = await handler(job)
      } catch (err) {
        if (snoozeMs !== undefined) return JSON.stringify({ ok: false, snooze: snoozeMs })
        const message = describeThrown(err)
        return JSON.stringify({ ok: false, error: { message, retryable: !(err instanceof UnrecoverableError) } })
      } finally {
        this.controllers.delete(execution)
      }
      // Snoozed: not a success, not a failure; the job runs again after the delay.
      if (snoozeMs !== undefined) return JSON.stringify({ ok: false, snooze: snoozeMs })
      // The job succeeded; a result JSON cannot hold must not turn that into a retry.
      try {
        return `{"ok":true,"result":${encodeData(result, 'handler result')}}`
      } catch (err) {
        process.emitWarning(`monque: result of job ${job.id} dropped: ${(err as Error).message}`)
        return '{"ok":true}'
      }
    }
    callNativeSync(() => native.register(name, run, JSON.stringify({ ...options, replace: true })))
  }

  private dispatch(json: string): void {
    const event = JSON.parse(json) as Record<string, any>
    const type = event.type as string
    if (type === 'internal:abort') {
      const reason =
        event.reason === 'timeout'
          ? new MonqueError('JOB_TIMEOUT', 'the job ran longer than its timeout')
          : event.reason === 'cancelled'
            ? new MonqueError('JOB_CANCELLED', 'the job was cancelled while it ran')
            : new MonqueError('SHUTDOWN_TIMEOUT', 'shutdown timeout reached')
      this.controllers.get(event.execution)?.abort(reason)
      // Its result will not be read: a handler that never settles must not keep the entry.
      this.controllers.delete(event.execution)
      return
    }
    if (this.logger) log(this.logger, event)
    const job = event.job ? toJob(event.job) : undefined
    switch (type) {
      case 'job:start':
        return this.safeEmit(type, job)
      case 'job:progress':
        return this.safeEmit(type, { id: event.id, progress: event.progress })
      case 'job:complete':
        return this.safeEmit(type, { job, duration: event.duration })
      case 'job:fail':
        return this.safeEmit(type, { job, error: new Error(event.error), willRetry: event.willRetry })
      case 'job:retry':
      case 'job:snoozed':
        return this.safeEmit(type, { job, nextRunAt: new Date(event.nextRunAt), delay: event.delay })
      case 'job:error':
        return this.safeEmit(type, { error: new MonqueError(event.code, event.error), job })
      case 'job:cancelled':
      case 'job:rescheduled':
      case 'job:priority':
        return this.safeEmit(type, { job })
      case 'job:retried':
        return this.safeEmit(type, { job, previousStatus: event.previousStatus })
      case 'job:deleted':
        return this.safeEmit(type, { jobId: event.jobId })
      case 'queue:paused':
      case 'queue:resumed':
        return this.safeEmit(type, { name: event.name ?? null })
      default:
        return this.safeEmit(type, { count: event.count })
    }
  }

  /** A listener that throws must not break the worker: report it as `job:error`. */
  private safeEmit(type: string, payload: unknown): void {
    try {
      ;(this.emit as (t: string, p: unknown) => boolean)(type, payload)
    } catch (err) {
      if (type === 'job:error') {
        process.emitWarning(`monque: a job:error listener threw: ${String(err)}`)
      } else {
        this.safeEmit('job:error', { error: err instanceof Error ? err : new Error(String(err)) })
      }
    }
  }
}

function encodeEnqueueOptions(options: EnqueueOptions): string {
  if (options === null || typeof options !== 'object') {
    throw new MonqueError('INVALID_OPTION', 'enqueue options must be an object')
  }
  const runAt = epochMs(options.runAt, 'runAt')
  checkKeyAndPriority(options)
  if (options.timeout !== undefined && (typeof options.timeout !== 'number' || !Number.isFinite(options.timeout) || options.timeout < 1)) {
    throw new MonqueError('INVALID_OPTION', 'timeout must be a number of milliseconds, at least 1')
  }
  let dependsOn: string[] | undefined
  if (options.dependsOn !== undefined) {
    if (!Array.isArray(options.dependsOn)) throw new MonqueError('INVALID_OPTION', 'dependsOn must be an array of job ids')
    dependsOn = options.dependsOn.map(idString)
  }
  return JSON.stringify({ uniqueKey: options.uniqueKey, runAt, priority: options.priority, timeout: options.timeout, dependsOn })
}

/** A time given as a `Date` or epoch ms, as epoch ms; undefined stays undefined. */
function epochMs(value: Date | number | undefined, key: string): number | undefined {
  if (value === undefined) return undefined
  const ms = value instanceof Date ? value.getTime() : value
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new MonqueError('INVALID_OPTION', `${key} must be a valid Date or epoch milliseconds`)
  }
  return ms
}

/** The `uniqueKey` and `priority` that enqueue and schedule options share. */
function checkKeyAndPriority(options: { uniqueKey?: unknown; priority?: unknown }): void {
  if (options.uniqueKey !== undefined && typeof options.uniqueKey !== 'string') {
    throw new MonqueError('INVALID_OPTION', 'uniqueKey must be a string')
  }
  if (options.priority !== undefined && !Number.isInteger(options.priority)) {
    throw new MonqueError('INVALID_OPTION', 'priority must be an integer')
  }
}

function idString(id: JobId): string {
  if (typeof id === 'string') return id
  if (id && typeof (id as { toHexString?: unknown }).toHexString === 'function') return id.toHexString()
  throw new MonqueError('INVALID_JOB_ID', 'job id must be a 24-character hex string or an ObjectId')
}

function parseJobs<T>(json: string): Job<T>[] {
  return (JSON.parse(json) as Record<string, unknown>[]).map((j) => toJob<T>(j))
}

/** A misspelt key would silently widen a listing or a bulk call: refuse it. */
function onlyKeys(value: object, allowed: string[], what: string): void {
  if (value === null || typeof value !== 'object') throw new MonqueError('INVALID_OPTION', `${what} must be an object`)
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new MonqueError('INVALID_OPTION', `unknown key \`${key}\` in ${what}; expected one of ${allowed.join(', ')}`)
    }
  }
}

function encodeSelector(selector: JobSelector): Record<string, unknown> {
  if (selector === null || typeof selector !== 'object') throw new MonqueError('INVALID_SELECTOR', 'selector must be an object')
  onlyKeys(selector, ['name', 'status', 'olderThan', 'newerThan'], 'selector')
  return {
    name: selector.name,
    status: selector.status,
    olderThan: epochMs(selector.olderThan, 'olderThan'),
    newerThan: epochMs(selector.newerThan, 'newerThan'),
  }
}

/** Warnings and errors to the console; the rest stays quiet. */
const consoleWarnings: Logger = {
  warn: (fields, message) => console.warn(`monque: ${message}`, fields),
  error: (fields, message) => console.error(`monque: ${message}`, fields),
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
      level = event.willRetry ? 'info' : 'warn'
      message = event.willRetry ? 'job failed; will retry' : 'job failed for good'
      Object.assign(fields, { error: event.error, willRetry: event.willRetry })
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

function encodeScheduleOptions(options: ScheduleOptions): string {
  if (options === null || typeof options !== 'object') {
    throw new MonqueError('INVALID_OPTION', 'schedule options must be an object')
  }
  if (options.timezone !== undefined && typeof options.timezone !== 'string') {
    throw new MonqueError('INVALID_TIMEZONE', 'timezone must be an IANA name such as "Europe/Berlin"')
  }
  checkKeyAndPriority(options)
  return JSON.stringify({ timezone: options.timezone, uniqueKey: options.uniqueKey, priority: options.priority })
}

/** NaN and Infinity would become `null` in JSON and silently fall back to defaults. */
/** What a handler threw, as a failReason: an Error's message, or a readable rendering of anything else. */
function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message
  if (typeof err === 'string') return err
  try {
    const json = JSON.stringify(err)
    if (json !== undefined) return `thrown non-Error value: ${json}`
  } catch {
    // Circular or BigInt: fall through.
  }
  return `thrown non-Error value: ${String(err)}`
}

function checkOptions(options: Record<string, unknown>): void {
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
    if (key === 'limiter' && value !== undefined) {
      const limiter = value as { max?: unknown; duration?: unknown } | null
      if (limiter === null || typeof limiter !== 'object') throw new MonqueError('INVALID_OPTION', 'limiter must be { max, duration }')
      onlyKeys(limiter, ['max', 'duration'], 'limiter')
      if (typeof limiter.max !== 'number' || !Number.isInteger(limiter.max) || limiter.max < 1) {
        throw new MonqueError('INVALID_OPTION', 'invalid option `limiter.max`: must be a whole number of jobs, at least 1')
      }
      if (typeof limiter.duration !== 'number' || !Number.isFinite(limiter.duration) || limiter.duration < 1) {
        throw new MonqueError('INVALID_OPTION', 'invalid option `limiter.duration`: must be a number of ms, at least 1')
      }
    }
  }
}
