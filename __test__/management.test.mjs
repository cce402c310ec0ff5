// The management API, logger and metrics from JS, against the real server.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Monque, MonqueError } from '../dist/index.mjs'
import { eventually, fast, oid, testDb, uri } from './helpers.mjs'

const later = () => ({ runAt: Date.now() + 3_600_000 })
const code = (c) => (err) => err instanceof MonqueError && err.code === c

test('read, page, count and change jobs; each change emits its event', async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false })
  const events = []
  for (const e of ['job:cancelled', 'job:retried', 'job:rescheduled', 'job:priority', 'job:deleted', 'jobs:cancelled', 'jobs:deleted']) {
    monque.on(e, (payload) => events.push([e, payload]))
  }
  await monque.initialize()
  const ids = []
  for (let i = 0; i < 12; i++) ids.push((await monque.enqueue('report', { i }, later())).id)

  const one = await monque.getJob(oid(ids[3]))
  assert.deepEqual(one.data, { i: 3 })
  assert.equal(await monque.getJob('65f0c0ffee0123456789abcd'), null)
  await assert.rejects(monque.getJob('nope'), code('INVALID_JOB_ID'))

  const listed = await monque.getJobs({ name: 'report', status: 'pending', limit: 5, skip: 2, withoutData: true })
  assert.deepEqual(listed.map((j) => j.id), ids.slice(2, 7))
  assert.ok(listed.every((j) => j.data === null))

  const seen = []
  let page = await monque.getJobsWithCursor({ limit: 5, sort: 'desc' })
  seen.push(...page.jobs.map((j) => j.id))
  while (page.hasNext) {
    page = await monque.getJobsWithCursor({ limit: 5, sort: 'desc', cursor: page.nextCursor })
    seen.push(...page.jobs.map((j) => j.id))
  }
  assert.deepEqual(seen, [...ids].reverse())
  const back = await monque.getJobsWithCursor({ limit: 5, sort: 'desc', cursor: page.prevCursor, direction: 'backward' })
  assert.deepEqual(back.jobs.map((j) => j.id), [...ids].reverse().slice(5, 10))

  const runAt = new Date(Date.now() + 7_200_000)
  assert.equal((await monque.rescheduleJob(ids[0], runAt)).nextRunAt.getTime(), runAt.getTime())
  assert.equal((await monque.setJobPriority(ids[0], 7)).priority, 7)
  assert.equal((await monque.cancelJob(ids[0])).status, 'cancelled')
  await assert.rejects(monque.cancelJob(ids[0]), (err) => code('INVALID_TRANSITION')(err) && /cancelled/.test(err.message))
  await assert.rejects(monque.cancelJob('65f0c0ffee0123456789abcd'), code('JOB_NOT_FOUND'))
  await assert.rejects(monque.setJobPriority(ids[1], 1.5), code('INVALID_OPTION'))
  const retried = await monque.retryJob(ids[0])
  assert.equal(retried.status, 'pending')
  assert.equal(await monque.deleteJob(ids[0]), true)
  assert.equal(await monque.deleteJob(ids[0]), false)

  await assert.rejects(monque.cancelJobs({}), code('INVALID_SELECTOR'))
  await assert.rejects(monque.deleteJobs({}), code('INVALID_SELECTOR'))
  await assert.rejects(monque.retryJobs({}), code('INVALID_SELECTOR'))
  assert.equal(await monque.cancelJobs({ name: 'report', status: ['pending'] }), 11)
  const stats = await monque.getQueueStats({ name: 'report' })
  assert.deepEqual(stats, { waiting: 0, pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 11, total: 11, avgProcessingMs: null, orphaned: 0 })
  assert.equal(await monque.deleteJobs({ status: 'cancelled', olderThan: new Date(Date.now() + 1000) }), 11)

  await eventually(() => events.length >= 7, { what: 'events' })
  assert.deepEqual(
    events.map(([e]) => e).sort(),
    ['job:cancelled', 'job:deleted', 'job:priority', 'job:rescheduled', 'job:retried', 'jobs:cancelled', 'jobs:deleted'],
  )
  assert.equal(events.find(([e]) => e === 'job:retried')[1].previousStatus, 'cancelled')
  assert.equal(events.find(([e]) => e === 'job:deleted')[1].jobId, ids[0])
})

test('pause stops processing until resume; isPaused reads the stored state', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false })
  let runs = 0
  monque.register('sync', async () => {
    runs++
  })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  await monque.pause('sync')
  assert.equal(await monque.isPaused('sync'), true)
  const job = await monque.now('sync', {})
  await new Promise((r) => setTimeout(r, 400))
  assert.equal(runs, 0)
  await monque.resume('sync')
  assert.equal(await monque.isPaused('sync'), false)
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) })).status === 'completed', { what: 'ran after resume' })
})

test('a logger receives the core events as structured fields', async (t) => {
  const { name } = await testDb(t)
  const lines = []
  const logger = Object.fromEntries(
    ['debug', 'info', 'warn', 'error'].map((level) => [level, (fields, message) => lines.push({ level, fields, message })]),
  )
  const monque = new Monque(uri, { ...fast, database: name, logger })
  monque.register('ok', async () => {})
  monque.register('bad', async () => {
    throw new Error('boom')
  }, { maxRetries: 0 })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const ok = await monque.now('ok', {})
  const bad = await monque.now('bad', {})
  await eventually(() => lines.some((l) => l.fields.event === 'job:fail') && lines.some((l) => l.fields.event === 'job:complete'), {
    what: 'log lines',
  })
  const complete = lines.find((l) => l.fields.event === 'job:complete')
  assert.equal(complete.level, 'debug')
  assert.equal(complete.fields.jobId, ok.id)
  assert.equal(complete.fields.name, 'ok')
  assert.equal(typeof complete.fields.durationMs, 'number')
  const fail = lines.find((l) => l.fields.event === 'job:fail')
  // A final failure is an error, with the handler's stack.
  assert.equal(fail.level, 'error')
  assert.match(fail.fields.stack, /^Error: boom\n/)
  assert.deepEqual(
    { jobId: fail.fields.jobId, error: fail.fields.error, willRetry: fail.fields.willRetry },
    { jobId: bad.id, error: 'boom', willRetry: false },
  )
})

test('metrics() is Prometheus text; retention purges finished jobs', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false, jobRetention: { completed: 1 } })
  monque.register('ok', async () => {})
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  await monque.now('ok', {})
  await monque.now('ok', {})
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 2, { what: 'completed' })
  const text = await monque.metrics()
  assert.match(text, /^# TYPE monque_jobs_completed_total counter$/m)
  assert.match(text, /^monque_jobs_completed_total\{name="ok"\} 2$/m)
  assert.match(text, /^monque_queue_depth\{name="ok",status="completed"\} 2$/m)
  await new Promise((r) => setTimeout(r, 5))
  assert.equal(await monque.purgeExpired(), 2)
  assert.equal(await jobs.countDocuments({}), 0)
})

test('misspelt listing keys and unusable retention options are refused, not ignored', async (t) => {
  const { name } = await testDb(t)
  assert.throws(() => new Monque(uri, { database: name, jobRetention: { completed: Number.NaN } }), code('INVALID_OPTION'))
  assert.throws(() => new Monque(uri, { database: name, jobRetention: { complete: 1000 } }), code('INVALID_OPTION'))
  const monque = new Monque(uri, { ...fast, database: name, logger: false })
  await assert.rejects(monque.getJobsWithCursor({ status: 'failed' }), code('INVALID_OPTION'))
  await assert.rejects(monque.getJobs({ statuses: ['failed'] }), code('INVALID_OPTION'))
  await assert.rejects(monque.deleteJobs({ nmae: 'typo' }), code('INVALID_OPTION'))
})

test('getInstances lists started instances with what they handle; due jobs nobody handles are orphans', async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  monque.register('mail', async () => {})
  const orphaned = []
  monque.on('jobs:orphaned', (e) => orphaned.push(e))
  await monque.initialize()
  await monque.enqueue('typo-in-name', {}, { runAt: Date.now() - 120_000 })
  monque.start()
  t.after(() => monque.stop())
  await eventually(async () => (await monque.getInstances()).length === 1, { what: 'listed' })
  const [me] = await monque.getInstances()
  assert.deepEqual(me.names, ['mail'])
  assert.ok(me.heartbeatAt instanceof Date && me.startedAt instanceof Date)
  assert.equal((await monque.getQueueStats()).orphaned, 1)
  await eventually(() => orphaned.length > 0, { what: 'jobs:orphaned' })
  assert.equal(orphaned[0].name, 'typo-in-name')
  assert.equal(orphaned[0].count, 1)
  assert.ok(orphaned[0].oldestDueAt instanceof Date)
  await monque.stop()
  assert.deepEqual(await monque.getInstances(), [], 'withdrawn on stop')
})

test('getJobs and getJobsWithCursor order by sortBy / sort; a bad sortBy is refused', async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false })
  await monque.initialize()
  const base = Date.now() + 3_600_000
  for (const offset of [3, 1, 2]) await monque.enqueue('sorted', { offset }, { runAt: base + offset * 1000 })
  const soonest = await monque.getJobs({ sortBy: 'nextRunAt' })
  assert.deepEqual(soonest.map((j) => j.data.offset), [1, 2, 3])
  const latest = await monque.getJobs({ sortBy: 'nextRunAt', sort: 'desc', limit: 2 })
  assert.deepEqual(latest.map((j) => j.data.offset), [3, 2])
  const first = await monque.getJobsWithCursor({ sortBy: 'nextRunAt', limit: 2 })
  assert.deepEqual(first.jobs.map((j) => j.data.offset), [1, 2])
  const next = await monque.getJobsWithCursor({ sortBy: 'nextRunAt', limit: 2, cursor: first.nextCursor })
  assert.deepEqual(next.jobs.map((j) => j.data.offset), [3])
  await assert.rejects(monque.getJobs({ sortBy: 'priority' }), code('INVALID_OPTION'))
  await assert.rejects(monque.getJobsWithCursor({ sortBy: 'updatedAt', cursor: first.nextCursor }), code('INVALID_CURSOR'))
})
