// The operators' API, one route per entry: what it reads or does, whether it writes,
// and the queue call behind it. The handler (handler.ts) matches, guards and answers;
// the OpenAPI document (openapi.ts) is generated from this same table.
import type { Monque } from '../monque'
import { bulkSelector, date, groupName, HttpError, jobId, jobName, optionalName, pageQuery, priority } from './params'

/** What a request asks to do: `read`, or the write action `authorize` is asked about. */
export type HttpAction =
  | 'read'
  | 'retry'
  | 'cancel'
  | 'run-now'
  | 'reschedule'
  | 'priority'
  | 'delete'
  | 'bulk-retry'
  | 'bulk-cancel'
  | 'bulk-delete'
  | 'pause'
  | 'resume'
  | 'redrive'

export interface Call {
  params: Record<string, string>
  query: URLSearchParams
  body: Record<string, unknown>
}

export interface Route {
  method: 'GET' | 'POST' | 'DELETE'
  /** With `:param` segments. */
  path: string
  action: HttpAction
  summary: string
  /** For the OpenAPI document: the JSON body fields a write takes. */
  body?: Record<string, { type: string; description: string }>
  /** For the OpenAPI document: the query parameters a read takes. */
  query?: Record<string, string>
  /** For the OpenAPI document: the schema of the answer (a name under components). */
  returns?: string
  /** The answer: JSON, or `{ text }` for text/plain. */
  run(monque: Monque, call: Call): Promise<unknown>
}

const notFound = (id: string) => new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`)

export const routes: Route[] = [
  {
    method: 'GET',
    path: '/api/health',
    returns: 'Health',
    action: 'read',
    summary: 'Whether the server answers, and how many instances are alive (503 when unhealthy)',
    run: async (m) => {
      const healthy = await m.isHealthy()
      const instances = healthy ? (await m.getInstances()).length : 0
      if (!healthy) throw new HttpError(503, 'CONNECTION_ERROR', 'the server does not answer', { healthy, instances })
      return { healthy, instances }
    },
  },
  {
    method: 'GET',
    path: '/api/names',
    returns: 'NameSummaries',
    action: 'read',
    summary: 'Every job name with its jobs per status and whether it is paused',
    run: (m) => m.getJobNames(),
  },
  {
    method: 'GET',
    path: '/api/stats',
    returns: 'QueueStats',
    action: 'read',
    summary: 'Jobs per status, mean processing time and orphaned jobs, of all names or one',
    query: { name: 'a job name', group: 'one group of that name' },
    run: (m, { query }) => {
      const name = query.get('name')
      const group = query.get('group')
      if (group !== null && !name) throw new HttpError(400, 'INVALID_OPTION', 'group needs a name: groups belong to one job name')
      return m.getQueueStats(name ? { name: jobName(name), ...(group === null ? {} : { group: groupName(group) }) } : {})
    },
  },
  {
    method: 'GET',
    path: '/api/names/:name/groups',
    returns: 'Groups',
    action: 'read',
    summary: 'The groups of a job name: jobs per status, oldest due job, slots held, whether paused',
    run: (m, { params }) => m.getGroups(jobName(params.name)),
  },
  {
    method: 'GET',
    path: '/api/jobs',
    returns: 'JobPage',
    action: 'read',
    summary: 'A page of jobs (data left out), filtered, sorted, with cursors for the pages around it',
    query: {
      name: 'a job name',
      group: "a group's jobs (one tenant), of every name unless name is given",
      status: 'statuses, comma-separated',
      newerThan: 'created after (ISO date or epoch ms)',
      olderThan: 'created before',
      cursor: 'nextCursor or prevCursor of a page',
      limit: '1-200, default 50',
      direction: 'forward (default) or backward',
      sortBy: 'createdAt (default), nextRunAt or updatedAt',
      sort: 'asc (default) or desc',
    },
    run: (m, { query }) => m.getJobsWithCursor(pageQuery(query)),
  },
  // Before the `/api/jobs/:id/...` routes: the first route that matches wins.
  ...(['retry', 'cancel', 'delete'] as const).map(
    (verb): Route => ({
      method: 'POST',
      path: `/api/jobs/bulk/${verb}`,
      returns: 'Count',
      action: `bulk-${verb}`,
      summary: `${verb[0]!.toUpperCase()}${verb.slice(1)}s every job the selector matches (a name, a group or a status is required)`,
      body: {
        name: { type: 'string', description: 'a job name' },
        group: { type: 'string', description: "a group's jobs (one tenant), of every name unless name is given" },
        status: { type: 'array', description: 'statuses' },
        olderThan: { type: 'string', description: 'created before' },
        newerThan: { type: 'string', description: 'created after' },
      },
      run: async (m, { body }) => {
        const selector = bulkSelector(body)
        const count = verb === 'retry' ? await m.retryJobs(selector) : verb === 'cancel' ? await m.cancelJobs(selector) : await m.deleteJobs(selector)
        return { count }
      },
    }),
  ),
  {
    method: 'GET',
    path: '/api/jobs/:id',
    returns: 'Job',
    action: 'read',
    summary: 'One job with its data, result, progress, error, stack and attempts',
    run: async (m, { params }) => {
      const id = jobId(params.id!)
      return (await m.getJob(id)) ?? Promise.reject(notFound(id))
    },
  },
  {
    method: 'GET',
    path: '/api/schedules',
    returns: 'Jobs',
    action: 'read',
    summary: 'Recurring jobs with their schedule and next run',
    query: { name: 'a job name' },
    run: (m, { query }) => {
      const name = query.get('name')
      return m.listSchedules(name ? jobName(name) : undefined)
    },
  },
  {
    method: 'GET',
    path: '/api/instances',
    returns: 'Instances',
    action: 'read',
    summary: 'Live instances: the job names each handles, when it started, its last heartbeat',
    run: (m) => m.getInstances(),
  },
  {
    method: 'GET',
    path: '/api/metrics',
    action: 'read',
    summary: 'Metrics in the Prometheus text format',
    run: async (m) => ({ text: await m.metrics() }),
  },
  {
    method: 'POST',
    path: '/api/jobs/:id/retry',
    returns: 'Job',
    action: 'retry',
    summary: 'Puts a failed or cancelled job back to pending, due now',
    run: (m, { params }) => m.retryJob(jobId(params.id!)),
  },
  {
    method: 'POST',
    path: '/api/jobs/:id/cancel',
    returns: 'Job',
    action: 'cancel',
    summary: 'Cancels a pending, waiting or running job (a running one is aborted)',
    run: (m, { params }) => m.cancelJob(jobId(params.id!)),
  },
  {
    method: 'POST',
    path: '/api/jobs/:id/run-now',
    returns: 'Job',
    action: 'run-now',
    summary: 'Makes a pending job due now',
    run: (m, { params }) => m.rescheduleJob(jobId(params.id!), Date.now()),
  },
  {
    method: 'POST',
    path: '/api/jobs/:id/reschedule',
    returns: 'Job',
    action: 'reschedule',
    summary: 'Moves a pending job to another time',
    body: { runAt: { type: 'string', description: 'ISO date or epoch ms' } },
    run: (m, { params, body }) => m.rescheduleJob(jobId(params.id!), date(body.runAt, 'runAt')),
  },
  {
    method: 'POST',
    path: '/api/jobs/:id/priority',
    returns: 'Job',
    action: 'priority',
    summary: "Changes a pending job's priority",
    body: { priority: { type: 'integer', description: 'higher runs first' } },
    run: (m, { params, body }) => m.setJobPriority(jobId(params.id!), priority(body)),
  },
  {
    method: 'DELETE',
    path: '/api/jobs/:id',
    returns: 'Deleted',
    action: 'delete',
    summary: 'Deletes a job (a running one is cancelled first)',
    run: async (m, { params }) => {
      const id = jobId(params.id!)
      if (!(await m.deleteJob(id))) throw notFound(id)
      return { deleted: true }
    },
  },
  {
    method: 'POST',
    path: '/api/names/:name/pause',
    returns: 'Paused',
    action: 'pause',
    summary: 'Pauses claims of a job name on every instance (running jobs finish)',
    run: async (m, { params }) => {
      await m.pause(jobName(params.name))
      return { paused: true }
    },
  },
  {
    method: 'POST',
    path: '/api/names/:name/resume',
    returns: 'Paused',
    action: 'resume',
    summary: 'Resumes claims of a job name',
    run: async (m, { params }) => {
      await m.resume(jobName(params.name))
      return { paused: false }
    },
  },
  {
    method: 'POST',
    path: '/api/names/:name/groups/:group/pause',
    returns: 'Paused',
    action: 'pause',
    summary: "Pauses claims of one group of a job name on every instance (the name's other groups go on)",
    run: async (m, { params }) => {
      await m.pauseGroup(jobName(params.name), groupName(params.group))
      return { paused: true }
    },
  },
  {
    method: 'POST',
    path: '/api/names/:name/groups/:group/resume',
    returns: 'Paused',
    action: 'resume',
    summary: 'Resumes claims of one group of a job name',
    run: async (m, { params }) => {
      await m.resumeGroup(jobName(params.name), groupName(params.group))
      return { paused: false }
    },
  },
  {
    method: 'POST',
    path: '/api/redrive',
    returns: 'Count',
    action: 'redrive',
    summary: 'Retries every failed job (of one name), spread over a few seconds',
    body: { name: { type: 'string', description: 'a job name; all names when left out' } },
    run: async (m, { body }) => {
      const name = optionalName(body)
      return { count: await m.retryJobs({ status: 'failed', ...(name === undefined ? {} : { name }) }) }
    },
  },
]

/** The route for `method` and `path` with its parameters, or why there is none. */
export function match(method: string, path: string): { route: Route; params: Record<string, string> } | { allowed: string[] } | null {
  const parts = path.split('/')
  const allowed: string[] = []
  for (const route of routes) {
    const pattern = route.path.split('/')
    if (pattern.length !== parts.length) continue
    const params: Record<string, string> = {}
    let ok = true
    for (let i = 0; i < pattern.length && ok; i++) {
      const p = pattern[i]!
      if (p.startsWith(':')) {
        try {
          params[p.slice(1)] = decodeURIComponent(parts[i]!)
        } catch {
          ok = false
        }
      } else ok = p === parts[i]
    }
    if (!ok) continue
    if (route.method === method) return { route, params }
    allowed.push(route.method)
  }
  return allowed.length ? { allowed } : null
}
