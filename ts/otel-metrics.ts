// The queue's metrics as OpenTelemetry instruments, when the optional peer
// `@opentelemetry/api` is installed. They carry the numbers `metrics()` renders for
// Prometheus, under names that OpenTelemetry's Prometheus exporter turns into the same
// ones (`monque.jobs.completed` with unit `{job}` -> `monque_jobs_completed_total`,
// `monque.job.duration` in `s` -> `monque_job_duration_seconds`). One read of the core per
// collection feeds every instrument.
import type * as Otel from '@opentelemetry/api'

import { otelApi, VERSION } from './tracing'
import type { TelemetryOptions } from './types'

/** The histogram bounds of the Prometheus metrics, in seconds. */
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

interface Snapshot {
  counters: { name: string; enqueued: number; started: number; completed: number; failed: number; retried: number }[]
  jobDurations: [string, number][]
  claimDurations: number[]
  activeJobs: number
  queueDepth: [string, string, number][]
  orphanedJobs: [string, number][]
  liveInstances: number
  clockOffsetSeconds: number
  groups: { name: string; due: number; paused: number }[]
}

const COUNTERS = [
  ['enqueued', 'Jobs written by enqueue calls on this instance.'],
  ['started', 'Job runs started on this instance.'],
  ['completed', 'Job runs that succeeded on this instance.'],
  ['failed', 'Job runs that failed on this instance (retried or not).'],
  ['retried', 'Failed runs put back to pending for a retry.'],
] as const

/** What the instruments read the core through. */
export interface TelemetrySource {
  keepTelemetrySamples(): void
  telemetry(): Promise<string>
}

/** Registers the instruments on the configured meter; returns how to unregister them. */
export function observeMetrics(options: TelemetryOptions | false | undefined, source: TelemetrySource): (() => void) | undefined {
  if (options === false) return undefined
  const api = otelApi()
  if (!api) return undefined
  const provider = (options?.meterProvider as Otel.MeterProvider | undefined) ?? api.metrics.getMeterProvider()
  const meter = provider.getMeter('monque', VERSION)
  // No SDK registered (yet): nothing would read the instruments, so the core keeps no
  // samples for them. start() looks again.
  if (meter.constructor === api.createNoopMeter().constructor) return undefined
  const counters = COUNTERS.map(
    ([key, description]) => [key, meter.createObservableCounter(`monque.jobs.${key}`, { description, unit: '{job}' })] as const,
  )
  const jobDuration = meter.createHistogram('monque.job.duration', {
    description: "Time from a run's start to its end, successful runs.",
    unit: 's',
    advice: { explicitBucketBoundaries: BUCKETS },
  })
  const claimDuration = meter.createHistogram('monque.claim.duration', {
    description: 'Round trip of one claim query.',
    unit: 's',
    advice: { explicitBucketBoundaries: BUCKETS },
  })
  const active = meter.createObservableGauge('monque.active_jobs', { description: 'Jobs running on this instance now.', unit: '{job}' })
  const depth = meter.createObservableGauge('monque.queue_depth', {
    description: 'Jobs in the queue per name and status, whole queue (every instance reports it: aggregate with max, not sum).',
    unit: '{job}',
  })
  const orphaned = meter.createObservableGauge('monque.orphaned_jobs', {
    description: 'Due pending jobs whose name no live instance handles, whole queue.',
    unit: '{job}',
  })
  const live = meter.createObservableGauge('monque.live_instances', { description: 'Started instances that heartbeated within a lease.', unit: '{instance}' })
  const offset = meter.createObservableGauge('monque.clock_offset', { description: "The server's clock minus this machine's.", unit: 's' })
  const groupsDue = meter.createObservableGauge('monque.groups_due', { description: 'Groups with due work per name, whole queue (aggregate with max).', unit: '{group}' })
  const groupsPaused = meter.createObservableGauge('monque.groups_paused', { description: 'Paused groups per name, whole queue (aggregate with max).', unit: '{group}' })
  const observables = [...counters.map(([, c]) => c), active, depth, orphaned, live, offset, groupsDue, groupsPaused]

  const collect: Otel.BatchObservableCallback = async (result) => {
    let s: Snapshot
    try {
      s = JSON.parse(await source.telemetry()) as Snapshot
    } catch {
      return // not connected, or the server is away: this collection has no queue numbers
    }
    for (const c of s.counters) for (const [key, counter] of counters) result.observe(counter, c[key], { name: c.name })
    // Single observations since the last read: recorded now, they are in this collection.
    for (const [name, seconds] of s.jobDurations) jobDuration.record(seconds, { name })
    for (const seconds of s.claimDurations) claimDuration.record(seconds)
    result.observe(active, s.activeJobs)
    for (const [name, status, count] of s.queueDepth) result.observe(depth, count, { name, status })
    for (const [name, count] of s.orphanedJobs) result.observe(orphaned, count, { name })
    result.observe(live, s.liveInstances)
    result.observe(offset, s.clockOffsetSeconds)
    for (const g of s.groups ?? []) {
      result.observe(groupsDue, g.due, { name: g.name })
      result.observe(groupsPaused, g.paused, { name: g.name })
    }
  }
  source.keepTelemetrySamples()
  meter.addBatchObservableCallback(collect, observables)
  return () => meter.removeBatchObservableCallback(collect, observables)
}
