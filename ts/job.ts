export type JobStatus = 'waiting' | 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled'

/** How a recurring job repeats: a cron expression in a timezone, or a fixed interval. */
export type Repeat = { cron: string; timezone: string } | { everyMs: number }

/** One finished run of a job, as kept in its `attempts` history. */
export interface Attempt {
  startedAt: Date
  durationMs: number
  outcome: 'completed' | 'failed' | 'snoozed' | 'stalled'
  /** Why a failed run failed (at most 1 KiB of it). */
  error?: string
  /** The instance that ran it. */
  instance?: string
  /** The W3C traceparent of the run's span, when it was traced. */
  traceparent?: string
}

/** A job as stored (see the README's "Job document"). Times are `Date`s. */
export interface Job<T = unknown> {
  id: string
  name: string
  data: T
  status: JobStatus
  priority: number
  nextRunAt: Date
  failCount: number
  /** Times the job was recovered from an expired lease (its worker died or hung). */
  stallCount?: number
  createdAt: Date
  updatedAt: Date
  lockedAt?: Date
  leaseExpiresAt?: Date
  claimedBy?: string
  claimId?: string
  /** The error of the last attempt, if it failed (a later success clears it). */
  failReason?: string
  /** Where that error came from: the head and tail of its stack (≤ 50 lines, 8 KiB). */
  failStack?: string
  /** The last runs, oldest first (at most 10): when, how long, how they ended. */
  attempts?: Attempt[]
  uniqueKey?: string
  /** Set on recurring jobs: how they repeat. */
  repeat?: Repeat
  /** Recurring jobs: the occurrence the next or current run stands for (retries keep it). */
  occurrenceAt?: Date
  completedAt?: Date
  /** How long the last successful run took, start to finish, in ms. */
  durationMs?: number
  /** Longest one run may take, in ms, when enqueued with a `timeout`. */
  timeoutMs?: number
  /** The last progress its handler reported (`job.updateProgress`). */
  progress?: unknown
  /** What the last successful run returned (JSON, at most `maxResultSize` bytes). */
  result?: unknown
  /** The jobs this one waits for (`enqueue(..., { dependsOn })`). */
  dependsOn?: string[]
  /** The group it belongs to (`enqueue(..., { group })`). */
  group?: string
  /** The trace context of the code that enqueued or scheduled it (see Tracing in the README). */
  traceContext?: { traceparent: string; tracestate?: string }
}

/** What a handler receives: the job plus a signal that aborts when it must stop. */
export interface RunningJob<T = unknown> extends Job<T> {
  /**
   * Aborts when `stop()`'s timeout passes (reason code `SHUTDOWN_TIMEOUT`; the job is
   * handed back to `pending`), when the job's `timeout` does (`JOB_TIMEOUT`), or when
   * the job is cancelled from any process while it runs (`JOB_CANCELLED`; it stays
   * `cancelled`, whatever the handler returns).
   */
  signal: AbortSignal
  /**
   * Stores how far this run got (a number or small JSON, at most 4 KiB) on the job,
   * visible to `getJob` from any process, and emits `job:progress`. Resolves false
   * when this run no longer holds the job (its lease was lost).
   */
  updateProgress(value: unknown): Promise<boolean>
  /**
   * Asks to run this job again in `delayMs` without counting a failure: once the handler
   * settles (returns or throws), the job goes back to `pending`, due then, with its
   * `failCount` unchanged, and `job:snoozed` is emitted. Throws `INVALID_OPTION` for a
   * delay that is not a positive number of ms (at most one year).
   */
  snooze(delayMs: number): void
}

const DATE_FIELDS = ['nextRunAt', 'createdAt', 'updatedAt', 'lockedAt', 'leaseExpiresAt', 'completedAt', 'occurrenceAt'] as const

/** The core sends jobs with times as epoch ms; users get `Date`s. */
export function toJob<T>(raw: Record<string, unknown>): Job<T> {
  const job = { ...raw } as Record<string, unknown>
  for (const field of DATE_FIELDS) {
    const v = job[field]
    if (typeof v === 'number') job[field] = new Date(v)
  }
  if (Array.isArray(job.attempts)) {
    job.attempts = job.attempts.map((a: Record<string, unknown>) =>
      typeof a.startedAt === 'number' ? { ...a, startedAt: new Date(a.startedAt) } : a,
    )
  }
  return job as unknown as Job<T>
}
