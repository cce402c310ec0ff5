// Recurring jobs: cron and interval schedules, kept one per (name, uniqueKey).
import { encodeData } from './data'
import { callNative, MonqueError } from './errors'
import { type Job, toJob } from './job'
import type { QueueHandle } from './native'
import { checkTraceContext, type Tracing, withTrace } from './tracing'
import type { ScheduleOptions, TraceContext } from './types'
import { checkKeyAndPriority } from './validate'

export async function schedule<T>(
  queue: QueueHandle,
  tracing: Tracing | undefined,
  cron: string,
  name: string,
  data: T | undefined,
  options: ScheduleOptions,
): Promise<Job<T>> {
  if (typeof cron !== 'string') throw new MonqueError('INVALID_CRON', 'cron expression must be a string')
  const json = encodeData(data ?? {})
  const opts = scheduleOptions(options)
  const native = await queue()
  const send = async (trace?: TraceContext) =>
    toJob<T>(JSON.parse(await callNative(() => native.schedule(cron, name, json, JSON.stringify(withTrace(opts, trace))))))
  return tracing ? tracing.produce('schedule', name, 1, send, (job) => job.id) : send()
}

export async function every<T>(
  queue: QueueHandle,
  tracing: Tracing | undefined,
  interval: number | string,
  name: string,
  data: T | undefined,
  options: ScheduleOptions,
): Promise<Job<T>> {
  const text = intervalText(interval)
  const json = encodeData(data ?? {})
  const opts = scheduleOptions(options)
  const native = await queue()
  const send = async (trace?: TraceContext) =>
    toJob<T>(JSON.parse(await callNative(() => native.every(text, name, json, JSON.stringify(withTrace(opts, trace))))))
  return tracing ? tracing.produce('schedule', name, 1, send, (job) => job.id) : send()
}

export async function unschedule(queue: QueueHandle, name: string, uniqueKey: string | undefined): Promise<boolean> {
  if (uniqueKey !== undefined && typeof uniqueKey !== 'string') {
    throw new MonqueError('INVALID_OPTION', 'uniqueKey must be a string')
  }
  const native = await queue()
  return callNative(() => native.unschedule(name, uniqueKey))
}

export async function listSchedules(queue: QueueHandle, name: string | undefined): Promise<Job[]> {
  const native = await queue()
  const jobs = JSON.parse(await callNative(() => native.listSchedules(name))) as Record<string, unknown>[]
  return jobs.map((j) => toJob(j))
}

/** An interval as the core parses it: milliseconds become `<n>ms`, strings pass as they are. */
function intervalText(interval: number | string): string {
  if (typeof interval === 'number') {
    if (!Number.isFinite(interval) || interval <= 0) {
      throw new MonqueError('INVALID_INTERVAL', `interval must be a positive number of milliseconds, got ${interval}`)
    }
    return `${interval}ms`
  }
  if (typeof interval === 'string') return interval
  throw new MonqueError('INVALID_INTERVAL', 'interval must be milliseconds or a string such as "5 minutes"')
}

function scheduleOptions(options: ScheduleOptions): ScheduleOptions {
  if (options === null || typeof options !== 'object') {
    throw new MonqueError('INVALID_OPTION', 'schedule options must be an object')
  }
  if (options.timezone !== undefined && typeof options.timezone !== 'string') {
    throw new MonqueError('INVALID_TIMEZONE', 'timezone must be an IANA name such as "Europe/Berlin"')
  }
  checkKeyAndPriority(options)
  return { timezone: options.timezone, uniqueKey: options.uniqueKey, priority: options.priority, traceContext: checkTraceContext(options.traceContext), group: options.group }
}
