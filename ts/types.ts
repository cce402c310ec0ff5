// The public option and result types of the queue API.
import type { Job, JobStatus, RunningJob } from './job'

/** Options for `new Monque(connection, options)`. Durations are milliseconds. */
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
  /**
   * How often a job may be recovered from an expired lease (its worker died or hung in
   * its run) before each further stall counts as a failed attempt, through the normal
   * retry / `failed` path. Default 1: a job that crashes its process on every run ends
   * `failed` instead of looping forever.
   */
  maxStalls?: number
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
  /**
   * Acknowledgment the queue's writes wait for. Default `{ w: 'majority' }`: an
   * acknowledged enqueue or completion survives a primary failover on a replica set.
   * `{ w: 1 }` is faster there, but a write acknowledged by a primary that fails before
   * replicating it is rolled back (a job may vanish or run twice). `w: 0` is refused.
   * `null`: the connection string's and the server's default.
   */
  writeConcern?: { w?: number | 'majority'; journal?: boolean; wtimeoutMS?: number } | null
  /**
   * Read concern of the queue's reads. Default: the server's (`local`). `majority` reads
   * only what a failover cannot roll back, at some latency on a replica set.
   */
  readConcern?: 'local' | 'majority' | 'linearizable' | 'available' | 'snapshot'
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
  /**
   * OpenTelemetry (with the optional peer `@opentelemetry/api` installed): a producer span
   * per enqueue / schedule, a consumer span per run continuing its trace, and the metrics
   * as OTel instruments. Default: the globally registered tracer and meter providers
   * (no-ops until an SDK registers them). `false` turns it all off.
   */
  telemetry?: TelemetryOptions | false
}

/** Where spans and metrics go; each defaults to the globally registered provider. */
export interface TelemetryOptions {
  /** An OpenTelemetry `TracerProvider`. */
  tracerProvider?: unknown
  /** An OpenTelemetry `MeterProvider`. */
  meterProvider?: unknown
}

/** A W3C trace context, as a job carries it from its enqueue to its runs. */
export interface TraceContext {
  /** `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. */
  traceparent: string
  /** Vendor entries, at most 512 characters. */
  tracestate?: string
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
  /** Only jobs of this group (one tenant), of any name unless `name` is given too. */
  group?: string
  status?: JobStatus | JobStatus[]
  /** Created before this time. */
  olderThan?: Date | number
  /** Created after this time. */
  newerThan?: Date | number
}

/**
 * What a listing is ordered by (ties broken by the job id): `createdAt` (default; backed
 * by the `_id` index whatever the filter), `nextRunAt` (when due), `updatedAt` (last
 * change; backed by the status index when the filter names one status).
 */
export type SortField = 'createdAt' | 'nextRunAt' | 'updatedAt'

export interface GetJobsOptions extends JobSelector {
  /** 1-1000, default 100. */
  limit?: number
  skip?: number
  /** Leave `data` out (it comes back as `null`): cheap listings for dashboards. */
  withoutData?: boolean
  /** Default `createdAt`. */
  sortBy?: SortField
  /** `asc` (default: oldest, soonest first) or `desc`. */
  sort?: 'asc' | 'desc'
}

export interface CursorOptions {
  /** A `nextCursor` / `prevCursor` from a previous page. */
  cursor?: string
  /** 1-1000, default 50. */
  limit?: number
  /** `forward` (default) pages after the cursor, `backward` before it. */
  direction?: 'forward' | 'backward'
  /** Default `createdAt`. A cursor belongs to the order it came from. */
  sortBy?: SortField
  /** `asc` (default: oldest, soonest first) or `desc`. */
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
  /** Due `pending` jobs whose name no live instance handles: nothing runs them. */
  orphaned: number
}

/** One job name in the operator's overview: its jobs per status, and whether it is paused. */
export interface JobNameSummary {
  name: string
  counts: { waiting: number; pending: number; processing: number; completed: number; failed: number; cancelled: number; total: number }
  /** Claims of this name are paused (by name, or the whole queue). */
  paused: boolean
}

/** A started instance, as it last reported itself (every heartbeat). */
export interface InstanceInfo {
  /** Its `claimedBy` value (`instanceId`). */
  id: string
  /** The job names it has workers for. */
  names: string[]
  startedAt: Date
  /** Its last heartbeat; instances silent for a lease are not listed. */
  heartbeatAt: Date
  notifyMode: NotifyMode
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
  /**
   * The trace the job's runs continue. Default: the producer span's, when tracing is on.
   * Set it to continue a trace from elsewhere (say, an incoming `traceparent` header).
   */
  traceContext?: TraceContext
  /**
   * The group (a tenant, say) the job belongs to: 1-256 bytes, no control characters.
   * Jobs of one name are claimed round-robin across groups with due work, and a worker's
   * `groupConcurrency` / `groupLimiter` cap each group. See Groups in the README.
   */
  group?: string
}

export interface ScheduleOptions {
  /** IANA timezone the cron expression is read in, e.g. `Europe/Berlin`. Default `UTC`. Cron only. */
  timezone?: string
  /** Tells several schedules of one name apart. Default `schedule:<name>`. */
  uniqueKey?: string
  /** Priority of each run. Default 0. */
  priority?: number
  /** The trace each run links to. Default: the producer span's, when tracing is on. */
  traceContext?: TraceContext
  /** The group each run belongs to (see `EnqueueOptions.group`). */
  group?: string
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
  /**
   * At most this many jobs of one group run at once, counted across every instance
   * (a guarded counter in MongoDB). Give every worker of a name the same value.
   * Default: no cap.
   */
  groupConcurrency?: number
  /** At most `max` jobs of one group start per `duration` ms, across every instance. */
  groupLimiter?: { max: number; duration: number }
}

/** One group of a job name, as `getGroups(name)` lists it. */
export interface GroupSummary {
  group: string
  /** Its jobs per status. */
  counts: QueueStats
  /** When its oldest pending job fell (or falls) due. */
  oldestDue?: Date
  /** Slots its running jobs hold under `groupConcurrency` (0 when no worker caps it). */
  running: number
  /** Paused with `pauseGroup`. */
  paused: boolean
  /** When a claim last took from it. */
  servedAt?: Date
}

export type Handler<T = any> = (job: RunningJob<T>) => unknown | Promise<unknown>

export interface EnqueueManyItem<T = unknown> {
  name: string
  data: T
  options?: EnqueueOptions
}

export type NotifyMode = 'off' | 'polling' | 'change-stream'
