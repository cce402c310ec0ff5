// The operators' HTTP API and dashboard as one node:http request handler, framework
// free: `(req, res, next?)` fits node:http, Express and Connect as is, Fastify and Ts.ED
// through a line each (README). Secure by default: read-only unless an `authorize`
// hook is given (or `readOnly: false` is said out loud); writes must be non-simple
// requests (JSON bodies, or DELETE) from the same origin; every input is checked
// into typed values before it reaches the queue (params.ts).
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { MonqueError } from '../errors'
import type { Monque } from '../monque'
import { LiveFeed } from './live'
import { openApiDocument } from './openapi'
import { HttpError } from './params'
import { type HttpAction, match } from './routes'

export type { HttpAction } from './routes'

export interface MonqueHttpOptions {
  /**
   * The path the handler answers under, e.g. `/monque` with node:http. Leave it out
   * where the framework strips its mount path (Express `app.use('/monque', handler)`).
   */
  prefix?: string
  /**
   * Asked before every request, reads (`'read'`) and writes alike; false answers 403
   * `FORBIDDEN`. Giving it turns writes on (unless `readOnly: true`).
   */
  authorize?: (req: IncomingMessage, action: HttpAction) => boolean | Promise<boolean>
  /** Refuse every write (403 `READ_ONLY`). Default: true unless `authorize` is given. */
  readOnly?: boolean
  /** Serve the dashboard at the prefix (default true); false serves the API alone. */
  dashboard?: boolean
  /** How often live clients' counts are re-read, in ms (default 2,000). */
  liveIntervalMs?: number
}

export interface MonqueHttpHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void
  /** Ends the open live streams (for a graceful server close). */
  close(): void
}

const MAX_BODY = 64 * 1024
const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
})()

/** HTTP status for a queue error code. */
function statusOf(code: string): number {
  if (code === 'JOB_NOT_FOUND') return 404
  if (code === 'INVALID_TRANSITION') return 409
  if (code === 'PAYLOAD_TOO_LARGE') return 413
  if (code === 'CONNECTION_ERROR') return 503
  if (code.startsWith('INVALID_')) return 400
  return 500
}

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/assets/app.js': 'app.js',
  '/assets/app.css': 'app.css',
}
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' }
const assetCache = new Map<string, Buffer>()
function asset(file: string): Buffer {
  let body = assetCache.get(file)
  if (!body) {
    body = readFileSync(join(__dirname, 'assets', file))
    assetCache.set(file, body)
  }
  return body
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
}
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS, ...headers })
  res.end(text)
}

function fail(res: ServerResponse, status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  send(res, status, { code, message, ...extra }, headers)
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parsed = (req as { body?: unknown }).body // a body parser ran before us (Express, Fastify)
  if (parsed !== undefined && !(typeof parsed === 'string' || Buffer.isBuffer(parsed))) {
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'INVALID_BODY', 'the body must be a JSON object')
    return parsed as Record<string, unknown>
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is over ${MAX_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (!text) return {}
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new HttpError(400, 'INVALID_BODY', 'the body is not valid JSON')
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'INVALID_BODY', 'the body must be a JSON object')
  return body as Record<string, unknown>
}

/** Why a write request may not come from here, or null: the browser-side guards. */
function crossSiteProblem(req: IncomingMessage): string | null {
  if (req.method === 'POST') {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    // A cross-site <form> can only send simple types; JSON needs a CORS preflight,
    // which this handler never grants.
    if (type !== 'application/json') return 'JSON_REQUIRED'
  }
  if (req.headers['sec-fetch-site'] === 'cross-site') return 'CROSS_ORIGIN'
  const origin = req.headers.origin
  // An opaque origin (`null`) or an unparsable one is as foreign as another host.
  if (origin && originHost(origin) !== req.headers.host) return 'CROSS_ORIGIN'
  return null
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host
  } catch {
    return null
  }
}

/**
 * The operators' API (and, unless `dashboard: false`, the dashboard) for `monque`.
 * It needs no started workers: a process that only serves the dashboard calls
 * `initialize()` (or nothing: the first request connects).
 */
export function createMonqueHandler(monque: Monque, options: MonqueHttpOptions = {}): MonqueHttpHandler {
  const prefix = (options.prefix ?? '').replace(/\/+$/, '')
  if (prefix && !prefix.startsWith('/')) throw new MonqueError('INVALID_OPTION', 'prefix must start with /')
  const readOnly = options.readOnly ?? !options.authorize
  const dashboard = options.dashboard ?? true
  const live = new LiveFeed(monque, options.liveIntervalMs ?? 2000)

  const allowed = async (req: IncomingMessage, action: HttpAction): Promise<boolean> => (options.authorize ? (await options.authorize(req, action)) === true : true)

  async function handle(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    let path = url.pathname
    if (prefix) {
      if (path !== prefix && !path.startsWith(`${prefix}/`)) {
        if (next) return next()
        return fail(res, 404, 'NOT_FOUND', `nothing at ${path}`)
      }
      path = path.slice(prefix.length)
    }
    const method = req.method ?? 'GET'

    if (path === '' || !path.startsWith('/api/')) {
      if (!dashboard || (method !== 'GET' && method !== 'HEAD')) {
        if (next) return next()
        return fail(res, 404, 'NOT_FOUND', `nothing at ${url.pathname}`)
      }
      // The dashboard's relative links need the trailing slash. Express strips its mount
      // path and turns `/monque` into `/`: its originalUrl tells.
      const original = (req as { originalUrl?: string }).originalUrl
      if (path === '' || (path === '/' && original !== undefined && !new URL(original, 'http://localhost').pathname.endsWith('/'))) {
        const full = original ?? req.url ?? '/'
        const [pathPart, search] = full.split('?')
        res.writeHead(308, { location: `${pathPart}/${search ? `?${search}` : ''}` })
        return void res.end()
      }
      const file = ASSETS[path]
      if (!file) {
        if (next) return next()
        return fail(res, 404, 'NOT_FOUND', `nothing at ${url.pathname}`)
      }
      if (!(await allowed(req, 'read'))) return fail(res, 403, 'FORBIDDEN', 'not allowed')
      const ext = file.slice(file.lastIndexOf('.') + 1)
      res.writeHead(200, { 'content-type': TYPES[ext]!, 'cache-control': ext === 'html' ? 'no-store' : 'no-cache', 'content-security-policy': CSP, ...SECURITY_HEADERS })
      return void res.end(method === 'HEAD' ? undefined : asset(file))
    }

    if (method === 'GET' && (path === '/api/capabilities' || path === '/api/openapi.json' || path === '/api/events')) {
      if (!(await allowed(req, 'read'))) return fail(res, 403, 'FORBIDDEN', 'not allowed')
      if (path === '/api/capabilities') return send(res, 200, { readOnly, version: VERSION })
      if (path === '/api/openapi.json') return send(res, 200, openApiDocument(VERSION, readOnly))
      return live.open(req, res)
    }

    const found = match(method, path)
    if (!found) return fail(res, 404, 'NOT_FOUND', `no route ${method} ${url.pathname}`)
    if ('allowed' in found) return fail(res, 405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here`, {}, { allow: found.allowed.join(', ') })
    const { route, params } = found
    const writes = route.action !== 'read'
    if (writes && readOnly) {
      return fail(res, 403, 'READ_ONLY', 'this dashboard is read-only: pass an `authorize` hook (or readOnly: false) to allow actions')
    }
    if (writes) {
      const problem = crossSiteProblem(req)
      if (problem === 'JSON_REQUIRED') return fail(res, 415, problem, 'a write must be sent with Content-Type: application/json')
      if (problem) return fail(res, 403, problem, 'writes are accepted from the same origin only')
    }
    if (!(await allowed(req, route.action))) return fail(res, 403, 'FORBIDDEN', `not allowed: ${route.action}`)
    const body = route.method === 'POST' ? await readJson(req) : {}
    const result = await route.run(monque, { params, query: url.searchParams, body })
    if (result && typeof result === 'object' && 'text' in result && route.path === '/api/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS })
      return void res.end((result as { text: string }).text)
    }
    send(res, 200, result)
  }

  const handler = ((req, res, next) => {
    handle(req, res, next).catch((err: unknown) => {
      if (res.headersSent) return void res.end()
      if (err instanceof HttpError) return fail(res, err.status, err.code, err.message, err.extra)
      if (err instanceof MonqueError) return fail(res, statusOf(err.code), err.code, err.message)
      fail(res, 500, 'INTERNAL_ERROR', err instanceof Error ? err.message : String(err))
    })
  }) as MonqueHttpHandler
  handler.close = () => live.closeAll()
  return handler
}

/** The parts of a Fastify request and reply the adapter uses (no Fastify types needed). */
interface FastifyRequestLike {
  raw: IncomingMessage
  body?: unknown
}
interface FastifyReplyLike {
  raw: ServerResponse
  hijack(): void
}

/**
 * The handler as a Fastify route handler: `fastify.all('/monque', h)` and
 * `fastify.all('/monque/*', h)` with `createMonqueHandler(monque, { prefix: '/monque' })`.
 * Fastify has parsed a JSON body already: it is handed over with the raw request.
 */
export function toFastify(handler: MonqueHttpHandler): (req: FastifyRequestLike, reply: FastifyReplyLike) => void {
  return (req, reply) => {
    reply.hijack()
    if (req.body !== undefined) (req.raw as { body?: unknown }).body = req.body
    handler(req.raw, reply.raw)
  }
}
