import { EventEmitter } from 'node:events'

import { type Connection, resolveConnection } from './connection'
import { encodeData } from './data'
import { callNative, callNativeSync, MonqueError, UnrecoverableError } from './errors'
import { dispatchEvent, type MonqueEvents, resolveLogger } from './events'
import { type Job, type RunningJob, toJob } from './job'
import * as management from './management'
import { connect, type NativeQueue, validateJobName } from './native'
import { observeMetrics } from './otel-metrics'
import * as schedules from './schedules'
import { checkTraceContext, Tracing, withTrace } from './tracing'
import type {
  CursorOptions,
  EnqueueManyItem,
  EnqueueOptions,
  GetJobsOptions,
  Handler,
  InstanceInfo,
  GroupSummary,
  JobNameSummary,
  JobId,
  JobPage,
  JobSelector,
  Logger,
  MonqueOptions,
  NotifyMode,
  QueueStats,
  ScheduleOptions,
  TelemetryOptions,
  TraceContext,
  WorkerOptions,
} from './types'
import { checkKeyAndPriority, checkOptions, epochMs, idString } from './validate'

/** Longest `job.snooze()` delay: one year. */
const MAX_SNOOZE_MS = 365 * 86_400_000

/** A MongoDB-backed job queue whose engine runs in Rust. */
export class Monque extends EventEmitter<MonqueEvents> {
  private readonly target: { uri: string; database?: string }
  private readonly options: MonqueOptions
  private native?: NativeQueue
  private connecting?: Promise<NativeQueue>
  private readonly pending = new Map<string, { handler: Handler; options: WorkerOptions }>()
  /** Abort controllers of running handlers, by `<jobId>:<claimId>`. */
  private readonly controllers = new Map<string, AbortController>()
  /** What each running handler returned, kept alive as long as its controller is listed. */
  private readonly settling = new WeakMap<AbortController, unknown>()
  private keepAlive?: NodeJS.Timeout
  private readonly logger?: Logger
  /** OpenTelemetry spans, when `@opentelemetry/api` is installed and telemetry is on. */
  private readonly tracing?: Tracing
  private readonly telemetry?: TelemetryOptions | false
  /** Unregisters the OpenTelemetry instruments (otel-metrics.ts), while registered. */
  private unobserve?: () => void

  constructor(connection: Connection, options: MonqueOptions = {}) {
    super()
    this.target = resolveConnection(connection)
    const { logger, telemetry, ...coreOptions } = options
    checkTelemetry(telemetry)
    this.logger = resolveLogger(logger)
    this.tracing = Tracing.create(telemetry)
    this.telemetry = telemetry
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
    const opts = enqueueOptions(options)
    const native = await this.connectOnce()
    const send = async (trace?: TraceContext) =>
      toJob<T>(JSON.parse(await callNative(() => native.enqueue(name, json, JSON.stringify(withTrace(opts, trace))))))
    return this.tracing ? this.tracing.produce('enqueue', name, 1, send, (job) => job.id) : send()
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
      return { head: `{"name":${JSON.stringify(j.name)},"data":${encodeData(j.data, `jobs[${i}].data`)},"options":`, opts: enqueueOptions(j.options ?? {}) }
    })
    const native = await this.connectOnce()
    const send = async (trace?: TraceContext) => {
      const batch = items.map((item) => `${item.head}${JSON.stringify(withTrace(item.opts, trace))}}`)
      return JSON.parse(await callNative(() => native.enqueueMany(`[${batch.join(',')}]`))) as { inserted: number; deduplicated: number }
    }
    if (!this.tracing) return send()
    const names = new Set(jobs.map((j) => j.name))
    return this.tracing.produce('enqueue', names.size === 1 ? jobs[0]!.name : undefined, jobs.length, send)
  }

  /**
   * Runs `name` on a cron schedule (5 fields such as `0 9 * * 1-5`, 6 with seconds, or `@daily`-style
   * macros) in `options.timezone`. Idempotent: calling it on every start, from any number of
   * processes, leaves one schedule per (name, uniqueKey); a new expression, timezone, data or
   * priority updates it. Returns the recurring job.
   */
  schedule<T>(cron: string, name: string, data?: T, options: ScheduleOptions = {}): Promise<Job<T>> {
    return schedules.schedule(this.connectOnce, this.tracing, cron, name, data, options)
  }

  /**
   * Runs `name` every `interval`: milliseconds, or a string such as `'5 minutes'` or `'1h 30m'`
   * (at least one second). The first run is one interval from now. Idempotent like `schedule`.
   */
  every<T>(interval: number | string, name: string, data?: T, options: ScheduleOptions = {}): Promise<Job<T>> {
    return schedules.every(this.connectOnce, this.tracing, interval, name, data, options)
  }

  /**
   * Stops the schedule (name, uniqueKey). A pending run is cancelled; a running one finishes
   * and is not rescheduled. Resolves false when there was no such schedule.
   */
  unschedule(name: string, uniqueKey?: string): Promise<boolean> {
    return schedules.unschedule(this.connectOnce, name, uniqueKey)
  }

  /** The active schedules (recurring jobs), soonest first; of every name or of `name`. */
  listSchedules(name?: string): Promise<Job[]> {
    return schedules.listSchedules(this.connectOnce, name)
  }

  /** The job with this id, or null. */
  getJob<T = unknown>(id: JobId): Promise<Job<T> | null> {
    return management.getJob<T>(this.connectOnce, id)
  }

  /** Jobs matching the selector, oldest first, paged with `skip` / `limit`. */
  getJobs<T = unknown>(options: GetJobsOptions = {}): Promise<Job<T>[]> {
    return management.getJobs<T>(this.connectOnce, options)
  }

  /** One page of a keyset-paginated listing, stable in both directions. */
  getJobsWithCursor<T = unknown>(options: CursorOptions = {}): Promise<JobPage<T>> {
    return management.getJobsWithCursor<T>(this.connectOnce, options)
  }

  /** The started instances that heartbeated within a lease, with the job names each handles. */
  getInstances(): Promise<InstanceInfo[]> {
    return management.getInstances(this.connectOnce)
  }

  /**
   * Every job name in the queue with its jobs per status and whether it is paused: the
   * overview a dashboard shows (one aggregation over the whole collection).
   */
  getJobNames(): Promise<JobNameSummary[]> {
    return management.getJobNames(this.connectOnce)
  }

  /**
   * Jobs per status, total and mean processing time; of every name, of `options.name`,
   * or of one group of that name (`{ name, group }`).
   */
  getQueueStats(options: { name?: string; group?: string } = {}): Promise<QueueStats> {
    return management.getQueueStats(this.connectOnce, options)
  }

  /** The groups of `name`: jobs per status, oldest due job, slots held, whether paused. */
  getGroups(name: string): Promise<GroupSummary[]> {
    return management.getGroups(this.connectOnce, name)
  }

  /**
   * Stops claiming one group of `name` on every instance (from each one's next claim);
   * the name's other groups go on, running jobs finish. A group can be paused before it
   * has jobs.
   */
  pauseGroup(name: string, group: string): Promise<void> {
    return management.setGroupPaused(this.connectOnce, name, group, true)
  }

  /** Undoes `pauseGroup(name, group)`. */
  resumeGroup(name: string, group: string): Promise<void> {
    return management.setGroupPaused(this.connectOnce, name, group, false)
  }

  /**
   * Cancels a pending or running job (`INVALID_TRANSITION` otherwise) and frees its uniqueKey.
   * A running job becomes `cancelled` at once and its `job.signal` aborts (`JOB_CANCELLED`) on
   * whichever process runs it: at once via a change stream, else on that worker's next heartbeat.
   */
  cancelJob<T = unknown>(id: JobId): Promise<Job<T>> {
    return management.changeJob<T>(this.connectOnce, id, 'cancel')
  }

  /** Puts a failed or cancelled job back to pending, due now, with `failCount` 0. */
  retryJob<T = unknown>(id: JobId): Promise<Job<T>> {
    return management.changeJob<T>(this.connectOnce, id, 'retry')
  }

  /** Gives a pending job a new run time. */
  rescheduleJob<T = unknown>(id: JobId, runAt: Date | number): Promise<Job<T>> {
    return management.changeJob<T>(this.connectOnce, id, 'reschedule', runAt instanceof Date ? runAt.getTime() : runAt)
  }

  /** Gives a pending job a new priority. */
  setJobPriority<T = unknown>(id: JobId, priority: number): Promise<Job<T>> {
    return management.changeJob<T>(this.connectOnce, id, 'priority', priority)
  }

  /** Deletes a job that is not running. Resolves false if there was none. */
  deleteJob(id: JobId): Promise<boolean> {
    return management.deleteJob(this.connectOnce, id)
  }

  /** Cancels the pending jobs the selector matches; an empty selector is refused. */
  cancelJobs(selector: JobSelector): Promise<number> {
    return management.changeJobs(this.connectOnce, 'cancel', selector)
  }

  /**
   * Retries the failed / cancelled jobs the selector matches (the dead-letter redrive),
   * their run times spread over `spread` ms (default 10000) so they do not stampede.
   */
  retryJobs(selector: JobSelector, options: { spread?: number } = {}): Promise<number> {
    return management.changeJobs(this.connectOnce, 'retry', selector, options.spread)
  }

  /** Deletes the jobs the selector matches, except running ones. */
  deleteJobs(selector: JobSelector): Promise<number> {
    return management.changeJobs(this.connectOnce, 'delete', selector)
  }

  /** Stops claiming `name` (or everything) on every instance; running jobs finish. */
  pause(name?: string): Promise<void> {
    return management.pause(this.connectOnce, name)
  }

  /** Undoes `pause(name)` (or the queue-wide pause). */
  resume(name?: string): Promise<void> {
    return management.resume(this.connectOnce, name)
  }

  /** Whether `name` is paused, by its own pause or the queue-wide one. */
  isPaused(name?: string): Promise<boolean> {
    return management.isPaused(this.connectOnce, name)
  }

  /** Deletes the jobs past `jobRetention` now, and idle groups' documents; started instances also do it periodically. Resolves with how many jobs. */
  purgeExpired(): Promise<number> {
    return management.purgeExpired(this.connectOnce)
  }

  /** Metrics in the Prometheus text format (serve it as `text/plain; version=0.0.4`). */
  metrics(): Promise<string> {
    return management.metrics(this.connectOnce)
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
    this.observe(native)
  }

  /** Registers the OpenTelemetry instruments, unless they are. */
  private observe(native: NativeQueue): void {
    this.unobserve ??= observeMetrics(this.telemetry, native)
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
    this.unobserve?.()
    this.unobserve = undefined
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

  /** The queue handle the management and schedule helpers take: connects on first use. */
  private readonly connectOnce = (): Promise<NativeQueue> => {
    this.connecting ??= (async () => {
      const native = await callNative(() => connect(this.target.uri, JSON.stringify(this.options)))
      native.onEvent((json) => dispatchEvent(this, this.controllers, this.logger, json))
      for (const [name, { handler, options }] of this.pending) this.attach(native, name, handler, options)
      this.native = native
      this.observe(native)
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
        const tracing = this.tracing
        // The run's span (tracing.ts) goes to the core at once, for the attempts history.
        const onSpan = (traceparent: string) => native.recordRunSpan(execution, traceparent)
        const pending = tracing
          ? tracing.consume(raw, controller.signal, onSpan, () => snoozeMs !== undefined, async () => handler(job))
          : handler(job)
        // Held while the run is in flight (its controller is listed): a handler promise
        // nothing else references could be garbage-collected unsettled, and with it the
        // core's reply channel. A run that never settles is its timeout's to end.
        this.settling.set(controller, pending)
        result = await pending
      } catch (err) {
        if (snoozeMs !== undefined) return JSON.stringify({ ok: false, snooze: snoozeMs })
        const message = describeThrown(err)
        const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack : undefined
        return JSON.stringify({ ok: false, error: { message, retryable: !(err instanceof UnrecoverableError), stack } })
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
}

function enqueueOptions(options: EnqueueOptions): EnqueueOptions {
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
  return { uniqueKey: options.uniqueKey, runAt, priority: options.priority, timeout: options.timeout, dependsOn, traceContext: checkTraceContext(options.traceContext), group: options.group }
}

/** `telemetry`: false, or providers that look like OpenTelemetry's. */
function checkTelemetry(telemetry: unknown): void {
  if (telemetry === undefined || telemetry === false) return
  const t = telemetry as TelemetryOptions | null
  const has = (provider: unknown, method: string) =>
    provider === undefined || (provider !== null && typeof (provider as Record<string, unknown>)[method] === 'function')
  if (t === null || typeof t !== 'object' || !has(t.tracerProvider, 'getTracer') || !has(t.meterProvider, 'getMeter')) {
    throw new MonqueError('INVALID_OPTION', 'telemetry must be false or { tracerProvider?: TracerProvider, meterProvider?: MeterProvider }')
  }
}

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
