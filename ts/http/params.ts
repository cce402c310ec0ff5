// What a request may ask for, checked before anything reaches the queue: ids, names,
// statuses, dates, paging and bulk selectors. Everything becomes a typed value the
// core takes as data (never a MongoDB operator); anything else is a 400 with a code.
import type { JobStatus } from '../job'
import type { CursorOptions, JobSelector, SortField } from '../types'

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** More fields for the JSON answer, beside `code` and `message`. */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

const bad = (code: string, message: string) => new HttpError(400, code, message)

export const STATUSES: readonly JobStatus[] = ['waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled']
const SORT_FIELDS: readonly SortField[] = ['createdAt', 'nextRunAt', 'updatedAt']
/** Largest page the API serves (the core allows 1,000; a page of a UI needs far fewer). */
export const MAX_PAGE = 200
const MAX_NAME = 256
const MAX_CURSOR = 1024

export function jobId(raw: string): string {
  if (!/^[0-9a-f]{24}$/i.test(raw)) throw bad('INVALID_JOB_ID', 'a job id is 24 hexadecimal characters')
  return raw.toLowerCase()
}

export function jobName(raw: unknown, field = 'name'): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_NAME) {
    throw bad('INVALID_JOB_NAME', `${field} must be a string of 1-${MAX_NAME} characters`)
  }
  return raw
}

/** A group name (the core checks its bytes and characters: INVALID_OPTION). */
export function groupName(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0) throw bad('INVALID_OPTION', 'group must be a non-empty string')
  return raw
}

function statuses(raw: unknown): JobStatus[] {
  const list = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : null
  if (!list || list.length === 0) throw bad('INVALID_OPTION', `status must be one or more of ${STATUSES.join(', ')}`)
  for (const s of list) {
    if (typeof s !== 'string' || !STATUSES.includes(s as JobStatus)) {
      throw bad('INVALID_OPTION', `unknown status ${JSON.stringify(s)}: one of ${STATUSES.join(', ')}`)
    }
  }
  return list as JobStatus[]
}

/** An ISO date or epoch milliseconds. */
export function date(raw: unknown, field: string): Date {
  const d = typeof raw === 'number' ? new Date(raw) : typeof raw === 'string' && /^\d+$/.test(raw) ? new Date(Number(raw)) : typeof raw === 'string' ? new Date(raw) : null
  if (!d || Number.isNaN(d.getTime())) throw bad('INVALID_OPTION', `${field} must be an ISO date or epoch milliseconds`)
  return d
}

function oneOf<T extends string>(raw: string | null, allowed: readonly T[], field: string): T | undefined {
  if (raw === null || raw === '') return undefined
  if (!allowed.includes(raw as T)) throw bad('INVALID_OPTION', `${field} must be one of ${allowed.join(', ')}`)
  return raw as T
}

/** A selector from the query string (a listing's filter); empty is fine for reads. */
function selectorFromQuery(q: URLSearchParams): JobSelector {
  const selector: JobSelector = {}
  const name = q.get('name')
  if (name) selector.name = jobName(name)
  const group = q.get('group')
  if (group) selector.group = groupName(group)
  const status = q.get('status')
  if (status) selector.status = statuses(status)
  const newer = q.get('newerThan')
  if (newer) selector.newerThan = date(newer, 'newerThan')
  const older = q.get('olderThan')
  if (older) selector.olderThan = date(older, 'olderThan')
  return selector
}

/** A page of jobs as the query string asks, data left out, at most `MAX_PAGE`. */
export function pageQuery(q: URLSearchParams): CursorOptions {
  const known = new Set(['name', 'group', 'status', 'newerThan', 'olderThan', 'cursor', 'limit', 'direction', 'sortBy', 'sort'])
  for (const key of q.keys()) if (!known.has(key)) throw bad('INVALID_OPTION', `unknown parameter ${JSON.stringify(key)}`)
  const options: CursorOptions = { filter: selectorFromQuery(q), withoutData: true }
  const limit = q.get('limit')
  if (limit) {
    const n = Number(limit)
    if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw bad('INVALID_OPTION', `limit must be an integer from 1 to ${MAX_PAGE}`)
    options.limit = n
  } else {
    options.limit = 50
  }
  const cursor = q.get('cursor')
  if (cursor) {
    if (cursor.length > MAX_CURSOR) throw bad('INVALID_CURSOR', 'cursor too long')
    options.cursor = cursor
  }
  const direction = oneOf(q.get('direction'), ['forward', 'backward'] as const, 'direction')
  if (direction) options.direction = direction
  const sortBy = oneOf(q.get('sortBy'), SORT_FIELDS, 'sortBy')
  if (sortBy) options.sortBy = sortBy
  const sort = oneOf(q.get('sort'), ['asc', 'desc'] as const, 'sort')
  if (sort) options.sort = sort
  return options
}

/**
 * The selector of a bulk write, from a JSON body: only `name`, `group`, `status`,
 * `olderThan` and `newerThan`, and at least a name, a group or a status (a bulk write
 * never selects the whole queue by accident).
 */
export function bulkSelector(body: Record<string, unknown>): JobSelector {
  const allowed = new Set(['name', 'group', 'status', 'olderThan', 'newerThan'])
  for (const key of Object.keys(body)) if (!allowed.has(key)) throw bad('INVALID_SELECTOR', `unknown selector field ${JSON.stringify(key)}`)
  const selector: JobSelector = {}
  if (body.name !== undefined) selector.name = jobName(body.name)
  if (body.group !== undefined) selector.group = groupName(body.group)
  if (body.status !== undefined) selector.status = statuses(body.status)
  if (body.olderThan !== undefined) selector.olderThan = date(body.olderThan, 'olderThan')
  if (body.newerThan !== undefined) selector.newerThan = date(body.newerThan, 'newerThan')
  if (selector.name === undefined && selector.group === undefined && selector.status === undefined) {
    throw bad('INVALID_SELECTOR', 'a bulk action needs a name, a group or a status (it never selects every job)')
  }
  return selector
}

export function optionalName(body: Record<string, unknown>): string | undefined {
  for (const key of Object.keys(body)) if (key !== 'name') throw bad('INVALID_OPTION', `unknown field ${JSON.stringify(key)}`)
  return body.name === undefined ? undefined : jobName(body.name)
}

export function priority(body: Record<string, unknown>): number {
  const p = body.priority
  if (typeof p !== 'number' || !Number.isInteger(p)) throw bad('INVALID_OPTION', 'priority must be an integer')
  return p
}
