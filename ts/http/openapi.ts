// The OpenAPI 3.1 document of the operators' API, generated from the route table.
import { STATUSES } from './params'
import { routes } from './routes'

const date = { type: 'string', format: 'date-time' }
const counts = {
  type: 'object',
  properties: Object.fromEntries([...STATUSES, 'total'].map((k) => [k, { type: 'integer' }])),
}
const job = {
  type: 'object',
  required: ['id', 'name', 'status', 'priority', 'nextRunAt', 'failCount', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string', pattern: '^[0-9a-f]{24}$' },
    name: { type: 'string' },
    data: { description: 'the job data (null in listings)' },
    status: { type: 'string', enum: STATUSES },
    priority: { type: 'integer' },
    nextRunAt: date,
    failCount: { type: 'integer' },
    stallCount: { type: 'integer' },
    createdAt: date,
    updatedAt: date,
    lockedAt: date,
    leaseExpiresAt: date,
    claimedBy: { type: 'string' },
    failReason: { type: 'string' },
    failStack: { type: 'string' },
    attempts: {
      type: 'array',
      items: {
        type: 'object',
        properties: { startedAt: date, durationMs: { type: 'integer' }, outcome: { type: 'string', enum: ['completed', 'failed', 'stalled', 'snoozed'] }, error: { type: 'string' }, instance: { type: 'string' }, traceparent: { type: 'string', description: "The W3C traceparent of the run's span" } },
      },
    },
    uniqueKey: { type: 'string' },
    repeat: { type: 'object', properties: { cron: { type: 'string' }, every: { type: ['integer', 'string'] }, timezone: { type: 'string' } } },
    completedAt: date,
    durationMs: { type: 'integer' },
    timeoutMs: { type: 'integer' },
    progress: {},
    result: {},
    dependsOn: { type: 'array', items: { type: 'string' } },
    traceContext: {
      type: 'object',
      description: 'The W3C trace context of the span that enqueued it',
      properties: { traceparent: { type: 'string' }, tracestate: { type: 'string' } },
    },
  },
}
const schemas: Record<string, unknown> = {
  Job: job,
  Jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } },
  JobPage: {
    type: 'object',
    properties: {
      jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } },
      nextCursor: { type: ['string', 'null'] },
      prevCursor: { type: ['string', 'null'] },
      hasNext: { type: 'boolean' },
      hasPrev: { type: 'boolean' },
    },
  },
  NameSummaries: {
    type: 'array',
    items: { type: 'object', properties: { name: { type: 'string' }, paused: { type: 'boolean' }, counts } },
  },
  QueueStats: {
    type: 'object',
    properties: { ...counts.properties, avgProcessingMs: { type: ['number', 'null'] }, orphaned: { type: 'integer' } },
  },
  Groups: {
    type: 'array',
    items: {
      type: 'object',
      properties: { group: { type: 'string' }, counts, oldestDue: date, running: { type: 'integer' }, paused: { type: 'boolean' }, servedAt: date },
    },
  },
  Instances: {
    type: 'array',
    items: { type: 'object', properties: { id: { type: 'string' }, names: { type: 'array', items: { type: 'string' } }, startedAt: date, heartbeatAt: date, notifyMode: { type: 'string' } } },
  },
  Health: { type: 'object', properties: { healthy: { type: 'boolean' }, instances: { type: 'integer' } } },
  Count: { type: 'object', properties: { count: { type: 'integer' } } },
  Deleted: { type: 'object', properties: { deleted: { type: 'boolean' } } },
  Paused: { type: 'object', properties: { paused: { type: 'boolean' } } },
}

const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string', description: 'stable error code (MonqueError codes, READ_ONLY, FORBIDDEN, …)' }, message: { type: 'string' } },
}

export function openApiDocument(version: string, readOnly: boolean): unknown {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:([a-zA-Z]+)/g, '{$1}')
    const parameters = [
      ...[...route.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries(route.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } })),
    ]
    const op: Record<string, unknown> = {
      operationId: `${route.method.toLowerCase()}${route.path.replace(/[/:-](\w)/g, (_, c: string) => c.toUpperCase())}`,
      summary: route.summary,
      ...(parameters.length ? { parameters } : {}),
      responses: {
        200: {
          description: 'OK',
          content:
            route.path === '/api/metrics'
              ? { 'text/plain': { schema: { type: 'string' } } }
              : { 'application/json': { schema: route.returns ? { $ref: `#/components/schemas/${route.returns}` } : {} } },
        },
        default: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    }
    if (route.action !== 'read') {
      op['x-monque-action'] = route.action
      if (route.method === 'POST') {
        op.requestBody = {
          required: true,
          description: 'Writes must be sent as application/json (a cross-site form cannot): an empty object when there are no fields.',
          content: {
            'application/json': {
              schema: { type: 'object', additionalProperties: false, properties: Object.fromEntries(Object.entries(route.body ?? {}).map(([k, v]) => [k, { type: v.type, description: v.description }])) },
            },
          },
        }
      }
    }
    paths[path] = { ...(paths[path] ?? {}), [route.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'monque operators API',
      version,
      description: `Reads are open to whoever may reach this handler (guard them with \`authorize\`). Writes ${readOnly ? 'are disabled on this instance (read-only)' : 'are allowed as `authorize` decides'}.`,
    },
    paths,
    components: { schemas: { ...schemas, Error: errorSchema } },
  }
}
