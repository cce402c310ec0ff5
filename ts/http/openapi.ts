// The OpenAPI 3.1 document of the operators' API, generated from the route table.
import { routes } from './routes'

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
        200: { description: 'OK', content: route.path === '/api/metrics' ? { 'text/plain': { schema: { type: 'string' } } } : { 'application/json': { schema: {} } } },
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
    components: { schemas: { Error: errorSchema } },
  }
}
