// Reading and managing stored jobs: listings, stats, single and bulk changes, pausing,
// retention and metrics. Input is checked before connecting, as in every queue method.
import { callNative, MonqueError } from './errors'
import { type Job, toJob } from './job'
import type { QueueHandle } from './native'
import type { CursorOptions, GetJobsOptions, GroupSummary, InstanceInfo, JobId, JobNameSummary, JobPage, JobSelector, QueueStats } from './types'
import { checkOptions, epochMs, idString, onlyKeys } from './validate'

/** What `changeJob` does to one job. */
export type JobAction = 'cancel' | 'retry' | 'reschedule' | 'priority'

/** What `changeJobs` does to the jobs a selector matches. */
export type BulkAction = 'cancel' | 'retry' | 'delete'

export async function getJob<T>(queue: QueueHandle, id: JobId): Promise<Job<T> | null> {
  const native = await queue()
  const json = await callNative(() => native.getJob(idString(id)))
  return json === null ? null : toJob<T>(JSON.parse(json))
}

export async function getJobs<T>(queue: QueueHandle, options: GetJobsOptions): Promise<Job<T>[]> {
  onlyKeys(options, ['name', 'group', 'status', 'olderThan', 'newerThan', 'limit', 'skip', 'withoutData', 'sortBy', 'sort'], 'getJobs options')
  const { limit, skip, withoutData, sortBy, sort, ...selector } = options
  const query = JSON.stringify({ ...encodeSelector(selector), limit, skip, withoutData, sortBy, sort })
  const native = await queue()
  return parseJobs<T>(await callNative(() => native.getJobs(query)))
}

export async function getJobsWithCursor<T>(queue: QueueHandle, options: CursorOptions): Promise<JobPage<T>> {
  onlyKeys(options, ['cursor', 'limit', 'direction', 'sortBy', 'sort', 'filter', 'withoutData'], 'getJobsWithCursor options')
  const query = JSON.stringify({ ...options, filter: options.filter && encodeSelector(options.filter) })
  const native = await queue()
  const page = JSON.parse(await callNative(() => native.getJobsWithCursor(query)))
  return { ...page, jobs: page.jobs.map((j: Record<string, unknown>) => toJob<T>(j)) }
}

export async function getInstances(queue: QueueHandle): Promise<InstanceInfo[]> {
  const native = await queue()
  const list = JSON.parse(await callNative(() => native.getInstances())) as Record<string, unknown>[]
  return list.map((i) => ({ ...i, startedAt: new Date(i.startedAt as number), heartbeatAt: new Date(i.heartbeatAt as number) }) as InstanceInfo)
}

export async function getJobNames(queue: QueueHandle): Promise<JobNameSummary[]> {
  const native = await queue()
  return JSON.parse(await callNative(() => native.getJobNames()))
}

export async function getQueueStats(queue: QueueHandle, options: { name?: string; group?: string }): Promise<QueueStats> {
  onlyKeys(options, ['name', 'group'], 'getQueueStats options')
  const native = await queue()
  return JSON.parse(await callNative(() => native.getQueueStats(options.name, options.group)))
}

export async function getGroups(queue: QueueHandle, name: string): Promise<GroupSummary[]> {
  const native = await queue()
  const rows = JSON.parse(await callNative(() => native.getGroups(name))) as Array<Record<string, unknown>>
  return rows.map((g) => ({
    ...g,
    oldestDue: typeof g.oldestDue === 'number' ? new Date(g.oldestDue) : undefined,
    servedAt: typeof g.servedAt === 'number' ? new Date(g.servedAt) : undefined,
  })) as GroupSummary[]
}

export async function setGroupPaused(queue: QueueHandle, name: string, group: string, paused: boolean): Promise<void> {
  const native = await queue()
  await callNative(() => (paused ? native.pauseGroup(name, group) : native.resumeGroup(name, group)))
}

/** Cancels, retries, reschedules (`value`: epoch ms) or reprioritises (`value`: priority) one job. */
export async function changeJob<T>(queue: QueueHandle, id: JobId, action: JobAction, value?: number): Promise<Job<T>> {
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
    throw new MonqueError('INVALID_OPTION', `${action === 'priority' ? 'priority' : 'runAt'} must be a finite number`)
  }
  const native = await queue()
  return toJob<T>(JSON.parse(await callNative(() => native.changeJob(idString(id), action, value))))
}

export async function deleteJob(queue: QueueHandle, id: JobId): Promise<boolean> {
  const native = await queue()
  return callNative(() => native.deleteJob(idString(id)))
}

/** Applies `action` to the jobs the selector matches; `spread` (ms) only for retries. */
export async function changeJobs(queue: QueueHandle, action: BulkAction, selector: JobSelector, spread?: number): Promise<number> {
  if (spread !== undefined) checkOptions({ spread })
  const json = JSON.stringify(encodeSelector(selector))
  const native = await queue()
  return callNative(() => native.changeJobs(action, json, spread))
}

export async function pause(queue: QueueHandle, name: string | undefined): Promise<void> {
  const native = await queue()
  await callNative(() => native.pause(name))
}

export async function resume(queue: QueueHandle, name: string | undefined): Promise<void> {
  const native = await queue()
  await callNative(() => native.resume(name))
}

export async function isPaused(queue: QueueHandle, name: string | undefined): Promise<boolean> {
  const native = await queue()
  return callNative(() => native.isPaused(name))
}

export async function purgeExpired(queue: QueueHandle): Promise<number> {
  const native = await queue()
  return callNative(() => native.purgeExpired())
}

export async function metrics(queue: QueueHandle): Promise<string> {
  const native = await queue()
  return callNative(() => native.metrics())
}

function encodeSelector(selector: JobSelector): Record<string, unknown> {
  if (selector === null || typeof selector !== 'object') throw new MonqueError('INVALID_SELECTOR', 'selector must be an object')
  onlyKeys(selector, ['name', 'group', 'status', 'olderThan', 'newerThan'], 'selector')
  return {
    name: selector.name,
    group: selector.group,
    status: selector.status,
    olderThan: epochMs(selector.olderThan, 'olderThan'),
    newerThan: epochMs(selector.newerThan, 'newerThan'),
  }
}

function parseJobs<T>(json: string): Job<T>[] {
  return (JSON.parse(json) as Record<string, unknown>[]).map((j) => toJob<T>(j))
}
