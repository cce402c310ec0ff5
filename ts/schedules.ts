// Recurring jobs: cron and interval schedules, kept one per (name, uniqueKey).
import { encodeData } from './data'
import { callNative, MonqueError } from './errors'
import { type Job, toJob } from './job'
import type { QueueHandle } from './native'
import type { ScheduleOptions } from './types'
import { checkKeyAndPriority } from './validate'

export async function schedule<T>(
  queue: QueueHandle,
  cron: string,
  name: string,
  data: T | undefined,
  options: ScheduleOptions,
): Promise<Job<T>> {
  if (typeof cron !== 'string') throw new MonqueError('INVALID_CRON', 'cron expression must be a string')
  const json = encodeData(data ?? {})
  const opts = encodeScheduleOptions(options)
  const native = await queue()
  return toJob<T>(JSON.parse(await callNative(() => native.schedule(cron, name, json, opts))))
}

export async function every<T>(
  queue: QueueHandle,
  interval: number | string,
  name: string,
  data: T | undefined,
  options: ScheduleOptions,
): Promise<Job<T>> {
  const text = intervalText(interval)
  const json = encodeData(data ?? {})
  const opts = encodeScheduleOptions(options)
  const native = await queue()
  return toJob<T>(JSON.parse(await callNative(() => native.every(text, name, json, opts))))
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
