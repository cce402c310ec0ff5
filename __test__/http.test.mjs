// The operators' HTTP API (monque/http) against the real server, through a real
// node:http server and an Express app: every route and action, and the security rules
// (read-only by default, authorize, no simple-request writes, strict selectors), each
// refusal checked to have written nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import express from 'express'
import Fastify from 'fastify'

import { Monque } from '../dist/index.mjs'
import { createMonqueHandler, toFastify } from '../dist/http/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

const later = () => ({ runAt: Date.now() + 3_600_000 })

/** A node:http server for `handler`; `call(method, path, { body, headers })` → { status, body, headers }. */
async function serve(t, handler) {
  const server = http.createServer((req, res) => handler(req, res))
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => {
    handler.close?.()
    server.closeAllConnections()
    return new Promise((r) => server.close(r))
  })
  const base = `http://127.0.0.1:${server.address().port}`
  const call = async (method, path, { body, headers = {} } = {}) => {
    const init = { method, headers: { ...headers }, redirect: 'manual' }
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body)
      init.headers['content-type'] ??= 'application/json'
    }
    const res = await fetch(base + path, init)
    const text = await res.text()
    let parsed = text
    try {
      parsed = JSON.parse(text)
    } catch {}
    return { status: res.status, body: parsed, headers: res.headers }
  }
  return { base, call }
}

/** A queue with jobs in every interesting state, and its database. */
async function queueWithJobs(t) {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false, maxRetries: 0 })
  await monque.initialize()
  monque.register('boom', async () => {
    throw new Error('the mail server said no')
  })
  monque.register('ok', async () => 'fine')
  monque.start()
  t.after(() => monque.stop())
  const failed = await monque.enqueue('boom', { to: 'ada' })
  await eventually(async () => (await monque.getJob(failed.id)).status === 'failed', { what: 'the failing job to fail' })
  const pending = []
  for (let i = 0; i < 5; i++) pending.push((await monque.enqueue('report', { i }, later())).id)
  return { monque, jobs, failed: failed.id, pending }
}

test('read-only by default: every read answers, every write is refused and writes nothing', async (t) => {
  const { monque, jobs, failed, pending } = await queueWithJobs(t)
  const { call } = await serve(t, createMonqueHandler(monque, { prefix: '/monque' }))

  const caps = await call('GET', '/monque/api/capabilities')
  assert.equal(caps.body.readOnly, true)
  const health = await call('GET', '/monque/api/health')
  assert.deepEqual([health.status, health.body.healthy, health.body.instances], [200, true, 1])

  const names = await call('GET', '/monque/api/names')
  const byName = Object.fromEntries(names.body.map((n) => [n.name, n]))
  assert.equal(byName.boom.counts.failed, 1)
  assert.equal(byName.report.counts.pending, 5)
  assert.equal(byName.report.paused, false)

  const stats = await call('GET', '/monque/api/stats?name=report')
  assert.equal(stats.body.pending, 5)

  // Paging with cursors, data left out.
  const first = await call('GET', '/monque/api/jobs?name=report&limit=2')
  assert.deepEqual(first.body.jobs.map((j) => j.id), pending.slice(0, 2))
  assert.ok(first.body.jobs.every((j) => j.data === null))
  const second = await call('GET', `/monque/api/jobs?name=report&limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`)
  assert.deepEqual(second.body.jobs.map((j) => j.id), pending.slice(2, 4))
  const desc = await call('GET', '/monque/api/jobs?status=pending,failed&sortBy=createdAt&sort=desc&limit=200')
  assert.equal(desc.body.jobs.length, 6)
  assert.equal(desc.body.jobs[0].id, pending[4])

  // One job, whole: data, failReason, the stack and the attempt history.
  const one = await call('GET', `/monque/api/jobs/${failed}`)
  assert.equal(one.status, 200)
  assert.deepEqual(one.body.data, { to: 'ada' })
  assert.equal(one.body.failReason, 'the mail server said no')
  assert.match(one.body.failStack, /Error: the mail server said no\n\s+at /)
  assert.equal(one.body.attempts.length, 1)
  assert.equal(one.body.attempts[0].outcome, 'failed')
  const missing = await call('GET', '/monque/api/jobs/65f0c0ffee0123456789abcd')
  assert.deepEqual([missing.status, missing.body.code], [404, 'JOB_NOT_FOUND'])

  await monque.schedule('0 3 * * *', 'nightly', {}, { timezone: 'Europe/Berlin' })
  const schedules = await call('GET', '/monque/api/schedules')
  assert.deepEqual(schedules.body.map((s) => [s.name, s.repeat.cron, s.repeat.timezone]), [['nightly', '0 3 * * *', 'Europe/Berlin']])
  const instances = await call('GET', '/monque/api/instances')
  assert.deepEqual(instances.body[0].names.sort(), ['boom', 'ok'])
  const metrics = await call('GET', '/monque/api/metrics')
  assert.match(metrics.headers.get('content-type'), /^text\/plain/)
  assert.match(metrics.body, /monque_jobs_failed_total\{name="boom"\} 1/)
  const openapi = await call('GET', '/monque/api/openapi.json')
  assert.equal(openapi.body.openapi, '3.1.0')
  assert.ok(openapi.body.paths['/api/jobs/{id}/retry'].post)
  assert.ok(openapi.body.paths['/api/jobs'].get.parameters.some((p) => p.name === 'cursor'))
  // Every answer schema it names exists, and the Job schema knows the fields a job has.
  const refs = JSON.stringify(openapi.body.paths).match(/#\/components\/schemas\/\w+/g)
  for (const ref of new Set(refs)) assert.ok(openapi.body.components.schemas[ref.split('/').pop()], ref)
  for (const field of Object.keys(one.body)) assert.ok(field in openapi.body.components.schemas.Job.properties, `Job schema lacks ${field}`)

  // Every write: 403 READ_ONLY, nothing changed.
  const before = await jobs.find({}, { sort: { _id: 1 } }).toArray()
  for (const [method, path, body] of [
    ['POST', `/monque/api/jobs/${failed}/retry`, {}],
    ['POST', `/monque/api/jobs/${pending[0]}/cancel`, {}],
    ['POST', `/monque/api/jobs/${pending[0]}/run-now`, {}],
    ['POST', `/monque/api/jobs/${pending[0]}/priority`, { priority: 9 }],
    ['DELETE', `/monque/api/jobs/${pending[0]}`, undefined],
    ['POST', '/monque/api/jobs/bulk/delete', { name: 'report' }],
    ['POST', '/monque/api/names/report/pause', {}],
    ['POST', '/monque/api/redrive', {}],
  ]) {
    const res = await call(method, path, { body })
    assert.deepEqual([res.status, res.body.code], [403, 'READ_ONLY'], `${method} ${path}`)
  }
  assert.deepEqual(await jobs.find({}, { sort: { _id: 1 } }).toArray(), before)
  assert.equal(await monque.isPaused('report'), false)

  // Unknown routes and methods.
  assert.equal((await call('GET', '/monque/api/nothing')).status, 404)
  const wrongMethod = await call('PUT', `/monque/api/jobs/${failed}`)
  assert.deepEqual([wrongMethod.status, wrongMethod.headers.get('allow')], [405, 'GET, DELETE'])
})

test('with authorize: each action works and is asked for; a denial is a 403 that writes nothing', async (t) => {
  const { monque, jobs, failed, pending } = await queueWithJobs(t)
  const asked = []
  const authorize = (req, action) => {
    asked.push(action)
    return req.headers['x-role'] === 'admin' || action === 'read'
  }
  const { call } = await serve(t, createMonqueHandler(monque, { prefix: '/ops', authorize }))
  const admin = { 'x-role': 'admin' }
  assert.equal((await call('GET', '/ops/api/capabilities')).body.readOnly, false)

  const denied = await call('POST', `/ops/api/jobs/${failed}/retry`, { body: {} })
  assert.deepEqual([denied.status, denied.body.code], [403, 'FORBIDDEN'])
  assert.equal((await monque.getJob(failed)).status, 'failed')

  // Retry a failed job: the worker runs it again (and it fails again).
  const retried = await call('POST', `/ops/api/jobs/${failed}/retry`, { body: {}, headers: admin })
  assert.equal(retried.status, 200)
  assert.equal(retried.body.status, 'pending')
  await eventually(async () => (await monque.getJob(failed)).failCount === 1 && (await monque.getJob(failed)).attempts.length === 2, { what: 'the retried run' })

  const cancelled = await call('POST', `/ops/api/jobs/${pending[0]}/cancel`, { body: {}, headers: admin })
  assert.equal(cancelled.body.status, 'cancelled')
  const again = await call('POST', `/ops/api/jobs/${pending[0]}/cancel`, { body: {}, headers: admin })
  assert.deepEqual([again.status, again.body.code], [409, 'INVALID_TRANSITION'])

  const runAt = new Date(Date.now() + 7_200_000).toISOString()
  const moved = await call('POST', `/ops/api/jobs/${pending[1]}/reschedule`, { body: { runAt }, headers: admin })
  assert.equal(moved.body.nextRunAt, runAt)
  const prioritised = await call('POST', `/ops/api/jobs/${pending[1]}/priority`, { body: { priority: 7 }, headers: admin })
  assert.equal(prioritised.body.priority, 7)
  const now = await call('POST', `/ops/api/jobs/${pending[1]}/run-now`, { body: {}, headers: admin })
  assert.ok(new Date(now.body.nextRunAt).getTime() <= Date.now() + 1000)

  const deleted = await call('DELETE', `/ops/api/jobs/${pending[2]}`, { headers: admin })
  assert.deepEqual(deleted.body, { deleted: true })
  assert.equal(await monque.getJob(pending[2]), null)
  assert.equal((await call('DELETE', `/ops/api/jobs/${pending[2]}`, { headers: admin })).status, 404)

  assert.deepEqual((await call('POST', '/ops/api/names/report/pause', { body: {}, headers: admin })).body, { paused: true })
  assert.equal(await monque.isPaused('report'), true)
  assert.equal((await call('GET', '/ops/api/names')).body.find((n) => n.name === 'report').paused, true)
  assert.deepEqual((await call('POST', '/ops/api/names/report/resume', { body: {}, headers: admin })).body, { paused: false })
  assert.equal(await monque.isPaused('report'), false)

  const bulkCancel = await call('POST', '/ops/api/jobs/bulk/cancel', { body: { name: 'report', status: ['pending'] }, headers: admin })
  // No worker handles `report`: pending[1] (due now), [3] and [4] are pending, [0] cancelled.
  assert.equal(bulkCancel.body.count, 3)
  const bulkRetry = await call('POST', '/ops/api/jobs/bulk/retry', { body: { name: 'report', status: 'cancelled' }, headers: admin })
  assert.equal(bulkRetry.body.count, 4)
  const bulkDelete = await call('POST', '/ops/api/jobs/bulk/delete', { body: { name: 'report' }, headers: admin })
  assert.equal(bulkDelete.body.count, 4)
  assert.equal(await jobs.countDocuments({ name: 'report' }), 0)

  await eventually(async () => (await monque.getJob(failed)).status === 'failed', { what: 'the retried job to fail again' })
  const redrive = await call('POST', '/ops/api/redrive', { body: { name: 'boom' }, headers: admin })
  assert.equal(redrive.body.count, 1)
  assert.ok(asked.includes('bulk-delete') && asked.includes('redrive') && asked.includes('read'))
})

test('writes must be non-simple same-origin requests; selectors and parameters are checked; nothing is written', async (t) => {
  const { monque, jobs, failed, pending } = await queueWithJobs(t)
  const { base, call } = await serve(t, createMonqueHandler(monque, { readOnly: false }))
  const before = await jobs.find({}, { sort: { _id: 1 } }).toArray()

  // What a cross-site <form> can send: simple content types, no JSON.
  for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
    const res = await call('POST', `/api/jobs/${failed}/retry`, { body: 'a=1', headers: { 'content-type': type } })
    assert.deepEqual([res.status, res.body.code], [415, 'JSON_REQUIRED'], type)
  }
  const noType = await fetch(`${base}/api/jobs/${failed}/retry`, { method: 'POST' })
  assert.equal(noType.status, 415)
  const otherOrigin = await call('POST', `/api/jobs/${failed}/retry`, { body: {}, headers: { origin: 'https://evil.example' } })
  assert.deepEqual([otherOrigin.status, otherOrigin.body.code], [403, 'CROSS_ORIGIN'])
  const crossSite = await call('DELETE', `/api/jobs/${failed}`, { headers: { 'sec-fetch-site': 'cross-site' } })
  assert.deepEqual([crossSite.status, crossSite.body.code], [403, 'CROSS_ORIGIN'])

  // Bulk selectors: never empty, never operators, only known fields.
  for (const [body, code] of [
    [{}, 'INVALID_SELECTOR'],
    [{ olderThan: Date.now() }, 'INVALID_SELECTOR'],
    [{ name: { $ne: 'x' } }, 'INVALID_JOB_NAME'],
    [{ status: { $in: ['failed'] } }, 'INVALID_OPTION'],
    [{ status: ['failed', 'exploded'] }, 'INVALID_OPTION'],
    [{ name: 'report', $where: '1' }, 'INVALID_SELECTOR'],
    [{ name: 'report', newerThan: 'yesterday' }, 'INVALID_OPTION'],
  ]) {
    const res = await call('POST', '/api/jobs/bulk/delete', { body })
    assert.deepEqual([res.status, res.body.code], [400, code], JSON.stringify(body))
  }
  for (const [body, code] of [
    ['not json', 'INVALID_BODY'],
    ['[1,2]', 'INVALID_BODY'],
    [{ priority: '9' }, 'INVALID_OPTION'],
    [{ priority: 1.5 }, 'INVALID_OPTION'],
  ]) {
    const res = await call('POST', `/api/jobs/${pending[0]}/priority`, { body })
    assert.deepEqual([res.status, res.body.code], [400, code], JSON.stringify(body))
  }
  for (const [path, code] of [
    ['/api/jobs?status=$gt', 'INVALID_OPTION'],
    ['/api/jobs?name[$ne]=x', 'INVALID_OPTION'],
    ['/api/jobs?limit=5000', 'INVALID_OPTION'],
    ['/api/jobs?limit=0', 'INVALID_OPTION'],
    ['/api/jobs?sortBy=data.secret', 'INVALID_OPTION'],
    ['/api/jobs?cursor=garbage', 'INVALID_CURSOR'],
    ['/api/jobs?newerThan=soon', 'INVALID_OPTION'],
    ['/api/jobs/zzz', 'INVALID_JOB_ID'],
    [`/api/jobs/${'a'.repeat(25)}`, 'INVALID_JOB_ID'],
  ]) {
    const res = await call('GET', path)
    assert.deepEqual([res.status, res.body.code], [400, code], path)
  }
  const huge = await call('POST', '/api/redrive', { body: { name: 'x'.repeat(70_000) } })
  assert.deepEqual([huge.status, huge.body.code], [413, 'PAYLOAD_TOO_LARGE'])
  const unknownField = await call('POST', '/api/redrive', { body: { status: 'failed' } })
  assert.deepEqual([unknownField.status, unknownField.body.code], [400, 'INVALID_OPTION'])

  assert.deepEqual(await jobs.find({}, { sort: { _id: 1 } }).toArray(), before)
})

test('live updates: a snapshot at once and when counts change, and the job events of this process', async (t) => {
  const { monque } = await queueWithJobs(t)
  const { base } = await serve(t, createMonqueHandler(monque, { liveIntervalMs: 100 }))
  const controller = new AbortController()
  t.after(() => controller.abort())
  const res = await fetch(`${base}/api/events`, { signal: controller.signal })
  assert.match(res.headers.get('content-type'), /^text\/event-stream/)
  const events = []
  const reading = (async () => {
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true })
      let at
      while ((at = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, at)
        buffer = buffer.slice(at + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (event) events.push({ event, data: JSON.parse(data) })
      }
    }
  })().catch(() => {})
  await eventually(() => events.some((e) => e.event === 'snapshot'), { what: 'the first snapshot' })
  const first = events.find((e) => e.event === 'snapshot').data
  assert.equal(first.names.find((n) => n.name === 'boom').counts.failed, 1)
  const job = await monque.enqueue('ok', { hello: 1 })
  await eventually(() => events.some((e) => e.event === 'job' && e.data.type === 'job:complete' && e.data.job.id === job.id), { what: 'job:complete on the stream' })
  await eventually(() => events.some((e) => e.event === 'snapshot' && e.data.names.find((n) => n.name === 'ok')?.counts.completed === 1), { what: 'a snapshot with the completed job' })
  controller.abort()
  await reading
})

test('Express: mounted with app.use under a path, after express.json(); the dashboard is served with a CSP', async (t) => {
  const { monque, failed } = await queueWithJobs(t)
  const app = express()
  app.use(express.json())
  const handler = createMonqueHandler(monque, { authorize: () => true })
  app.use('/admin/queue', handler)
  app.get('/other', (_req, res) => res.send('the app'))
  const server = app.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  t.after(() => {
    handler.close()
    server.closeAllConnections()
    return new Promise((r) => server.close(r))
  })
  const base = `http://127.0.0.1:${server.address().port}`
  const redirect = await fetch(`${base}/admin/queue`, { redirect: 'manual' })
  assert.deepEqual([redirect.status, redirect.headers.get('location')], [308, '/admin/queue/'])
  const page = await fetch(`${base}/admin/queue/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/)
  assert.match(await page.text(), /<script type="module" src="assets\/app\.js">/)
  assert.equal((await fetch(`${base}/admin/queue/assets/app.js`)).status, 200)
  const names = await (await fetch(`${base}/admin/queue/api/names`)).json()
  assert.ok(names.some((n) => n.name === 'boom'))
  // express.json() consumed the body before us: the handler takes its parsed value.
  const retried = await fetch(`${base}/admin/queue/api/jobs/${failed}/retry`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(retried.status, 200)
  assert.equal(await (await fetch(`${base}/other`)).text(), 'the app')
})

test('Fastify: two routes with toFastify(); its parsed JSON body reaches the action', async (t) => {
  const { monque, pending } = await queueWithJobs(t)
  const app = Fastify()
  const handler = createMonqueHandler(monque, { prefix: '/monque', authorize: () => true })
  app.all('/monque', toFastify(handler))
  app.all('/monque/*', toFastify(handler))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => {
    handler.close()
    return app.close()
  })
  const base = `http://127.0.0.1:${app.server.address().port}`
  const redirect = await fetch(`${base}/monque`, { redirect: 'manual' })
  assert.deepEqual([redirect.status, redirect.headers.get('location')], [308, '/monque/'])
  assert.match(await (await fetch(`${base}/monque/`)).text(), /assets\/app\.js/)
  const names = await (await fetch(`${base}/monque/api/names`)).json()
  assert.equal(names.find((n) => n.name === 'report').counts.pending, 5)
  const res = await fetch(`${base}/monque/api/jobs/${pending[0]}/priority`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ priority: 4 }) })
  assert.equal(res.status, 200)
  assert.equal((await monque.getJob(pending[0])).priority, 4)
  const form = await fetch(`${base}/monque/api/jobs/${pending[0]}/cancel`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })
  assert.equal(form.status, 415)
  assert.equal((await monque.getJob(pending[0])).status, 'pending')
})

test('groups: list a name\'s groups, stats of one, pause and resume one group (and refused without authorize)', async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false })
  await monque.initialize()
  await monque.enqueueMany([
    { name: 'sync', data: {}, options: { group: 'acme' } },
    { name: 'sync', data: {}, options: { group: 'acme' } },
    { name: 'sync', data: {}, options: { group: 'a/b c' } },
  ])
  const admin = { 'x-role': 'admin' }
  const { call } = await serve(t, createMonqueHandler(monque, { authorize: (req, action) => action === 'read' || req.headers['x-role'] === 'admin' }))
  const groups = await call('GET', '/api/names/sync/groups')
  assert.equal(groups.status, 200)
  assert.deepEqual(groups.body.map((g) => [g.group, g.counts.pending, g.paused]), [['a/b c', 1, false], ['acme', 2, false]])
  assert.equal((await call('GET', '/api/stats?name=sync&group=acme')).body.pending, 2)
  const noName = await call('GET', '/api/stats?group=acme')
  assert.deepEqual([noName.status, noName.body.code], [400, 'INVALID_OPTION'])
  // A group name with a slash and a space, encoded in the path.
  const path = `/api/names/sync/groups/${encodeURIComponent('a/b c')}`
  const denied = await call('POST', `${path}/pause`, { body: {} })
  assert.equal(denied.status, 403)
  assert.equal((await monque.getGroups('sync')).find((g) => g.group === 'a/b c').paused, false)
  assert.deepEqual((await call('POST', `${path}/pause`, { body: {}, headers: admin })).body, { paused: true })
  assert.equal((await monque.getGroups('sync')).find((g) => g.group === 'a/b c').paused, true)
  assert.deepEqual((await call('POST', `${path}/resume`, { body: {}, headers: admin })).body, { paused: false })
  const tooLong = await call('POST', `/api/names/sync/groups/${'x'.repeat(300)}/pause`, { body: {}, headers: admin })
  assert.deepEqual([tooLong.status, tooLong.body.code], [400, 'INVALID_OPTION'])
  // One tenant's jobs: listed, then cancelled in bulk; the other group is untouched.
  const listed = await call('GET', `/api/jobs?name=sync&group=${encodeURIComponent('a/b c')}`)
  assert.equal(listed.status, 200)
  assert.deepEqual(listed.body.jobs.map((j) => j.group), ['a/b c'])
  const badGroup = await call('GET', '/api/jobs?group=')
  assert.equal(badGroup.status, 200, 'an empty parameter is no filter')
  assert.equal(badGroup.body.jobs.length, 3)
  const cancelDenied = await call('POST', '/api/jobs/bulk/cancel', { body: { group: 'acme' } })
  assert.equal(cancelDenied.status, 403)
  const cancelled = await call('POST', '/api/jobs/bulk/cancel', { body: { group: 'acme' }, headers: admin })
  assert.deepEqual(cancelled.body, { count: 2 })
  assert.equal((await monque.getQueueStats({ name: 'sync', group: 'acme' })).cancelled, 2)
  assert.equal((await monque.getQueueStats({ name: 'sync', group: 'a/b c' })).pending, 1)
  const notAGroup = await call('POST', '/api/jobs/bulk/retry', { body: { group: 7 }, headers: admin })
  assert.deepEqual([notAGroup.status, notAGroup.body.code], [400, 'INVALID_OPTION'])
  assert.equal((await monque.getQueueStats({ name: 'sync', group: 'acme' })).cancelled, 2, 'nothing retried')
  const doc = (await call('GET', '/api/openapi.json')).body
  assert.ok(doc.paths['/api/names/{name}/groups'].get)
  assert.ok(doc.paths['/api/names/{name}/groups/{group}/pause'].post)
  assert.ok(JSON.stringify(doc.paths['/api/jobs'].get).includes('"group"'), 'the listing documents group')
})
