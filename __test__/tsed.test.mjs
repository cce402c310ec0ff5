// The Ts.ED module in real Ts.ED bootstraps (DITest from @tsed/di), against the real server.
// Decorators are applied as the functions they are (this file is plain JS); the typed
// TypeScript form is in the README and type-checked by `npm run build`.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest, inject, injectable, ProviderScope } from '@tsed/di'
import { $asyncEmit } from '@tsed/hooks'
import { MongoClient } from 'mongodb'

import { Cron, currentJob, Job, JobController, MONQUE_JOB, MonqueService } from '../dist/tsed/index.mjs'
import { eventually, fast, oid, testDb, uri } from './helpers.mjs'

const quiet = { logger: { level: 'off' } }

/** Boots Ts.ED with `monque` settings and announces the server ready. */
async function boot(t, monque, extra = {}) {
  await DITest.create({ ...quiet, ...extra, monque: { ...fast, logger: false, ...monque } })
  await $asyncEmit('$onReady')
  let stopped = false
  t.after(async () => {
    if (!stopped) await DITest.reset()
  })
  return {
    service: DITest.get(MonqueService),
    /** Ts.ED shutdown: runs $onDestroy (graceful stop). */
    shutdown: async () => {
      stopped = true
      await DITest.reset()
    },
  }
}

// Shared providers: a singleton and a request-scoped one.
const greetings = []
class Greeter {
  greet(who) {
    greetings.push(who)
  }
}
injectable(Greeter)

let scopedMade = 0
let scopedDestroyed = 0
class PerJob {
  id = ++scopedMade
  $onDestroy() {
    scopedDestroyed++
  }
}
injectable(PerJob).scope(ProviderScope.REQUEST)

class PerJobHelper {
  perJob = inject(PerJob)
}
injectable(PerJobHelper).scope(ProviderScope.REQUEST)

const seen = []
class SendWelcome {
  greeter = inject(Greeter)
  perJob = inject(PerJob)
  helper = inject(PerJobHelper)
  job = inject(MONQUE_JOB)
  async handle(job) {
    this.perJob.jobId = job.id
    await new Promise((r) => setTimeout(r, 50)) // overlap with the other job
    this.greeter.greet(job.data.to)
    seen.push({
      greeter: this.greeter,
      perJob: this.perJob.id,
      sharedWithinJob: this.helper.perJob === this.perJob && this.perJob.jobId === job.id,
      sameJob: this.job === job && currentJob() === job,
    })
  }
}
Job('tsed:welcome', { concurrency: 2, scope: ProviderScope.REQUEST })(SendWelcome)

test('a @Job class with injected services processes jobs; request-scoped providers are fresh per job', async (t) => {
  const { name, jobs } = await testDb(t)
  const { service } = await boot(t, { connection: `${uri.replace(/\/\?/, `/${name}?`)}` })
  const a = await service.now('tsed:welcome', { to: 'ada' })
  const b = await service.now('tsed:welcome', { to: 'grace' })
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 2, { what: 'both jobs' })
  assert.deepEqual(greetings.slice(-2).sort(), ['ada', 'grace'])
  const mine = seen.slice(-2)
  assert.ok(mine.every((s) => s.sameJob), 'the job is injectable and in the DI context')
  assert.notEqual(mine[0].perJob, mine[1].perJob, 'a fresh request-scoped provider per job')
  assert.ok(mine.every((s) => s.sharedWithinJob), 'one request-scoped instance within a job, even with jobs overlapping')
  assert.ok(mine.every((s) => s.greeter === DITest.get(Greeter)), 'singletons keep their identity')
  assert.equal(scopedDestroyed, 2, 'request-scoped providers are destroyed after their job')
  assert.ok((await jobs.findOne({ _id: oid(a.id) })).completedAt)
  assert.ok((await jobs.findOne({ _id: oid(b.id) })).completedAt)
})

// A controller with method handlers and a cron schedule.
const reports = []
class Reports {
  greeter = inject(Greeter)
  daily(job) {
    reports.push(['daily', job.name])
  }
  adhoc(job) {
    reports.push(['adhoc', job.data])
  }
}
Cron('0 6 * * *', { timezone: 'Europe/Berlin', name: 'daily' })(Reports.prototype, 'daily')
Job('adhoc')(Reports.prototype, 'adhoc')
JobController('reports')(Reports)

test('a native Db works; @JobController methods handle namespaced jobs; @Cron stays one schedule across restarts', async (t) => {
  const { name, jobs } = await testDb(t)
  const client = await MongoClient.connect(uri)
  t.after(() => client.close())
  const db = client.db(name)
  for (let start = 0; start < 2; start++) {
    const { service, shutdown } = await boot(t, { connection: db })
    const schedules = await service.queue.listSchedules('reports.daily')
    assert.equal(schedules.length, 1)
    assert.deepEqual(schedules[0].repeat, { cron: '0 6 * * *', timezone: 'Europe/Berlin' })
    await shutdown()
  }
  assert.equal(await jobs.countDocuments({ name: 'reports.daily' }), 1)
  const { service } = await boot(t, { connection: db })
  await service.now('reports.adhoc', { n: 1 })
  await eventually(() => reports.some(([kind]) => kind === 'adhoc'), { what: 'controller method ran' })
  assert.deepEqual(reports.find(([kind]) => kind === 'adhoc'), ['adhoc', { n: 1 }])
})

test('producer-only mode enqueues but runs nothing', async (t) => {
  const { name, jobs } = await testDb(t)
  const before = greetings.length
  const { service } = await boot(t, { connection: uri, database: name, disableJobProcessing: true })
  const job = await service.now('tsed:welcome', { to: 'nobody' })
  await new Promise((r) => setTimeout(r, 400))
  assert.equal((await jobs.findOne({ _id: oid(job.id) })).status, 'pending')
  assert.equal(greetings.length, before)
})

// A job that waits until released, to shut down under it.
let releaseSlow
class Slow {
  async handle(job) {
    await new Promise((resolve) => {
      releaseSlow = resolve
      job.signal.addEventListener('abort', resolve)
    })
    throw new Error('aborted')
  }
}
Job('tsed:slow')(Slow)

test('Ts.ED shutdown stops gracefully and hands unfinished jobs back', async (t) => {
  const { name, jobs } = await testDb(t)
  const { service, shutdown } = await boot(t, { connection: uri, database: name, shutdownTimeout: 200 })
  const job = await service.now('tsed:slow', {})
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) })).status === 'processing', { what: 'running' })
  await shutdown()
  const after = await jobs.findOne({ _id: oid(job.id) })
  assert.equal(after.status, 'pending', 'handed back at once, not left to its lease')
  assert.equal(after.failCount, 0)
  assert.equal(after.claimId, undefined)
  releaseSlow?.()
})

test('a missing or ambiguous connection is a clear error at startup', async () => {
  for (const [settings, pattern] of [
    [{}, /configure `monque.connection`/],
    [{ connection: uri, mongooseConnectionId: 'default' }, /not both/],
  ]) {
    await assert.rejects(DITest.create({ ...quiet, monque: settings }), (err) => err.code === 'INVALID_CONNECTION' && pattern.test(err.message))
    await DITest.reset()
  }
})

test('the connection can come from @tsed/mongoose', async (t) => {
  const { name, jobs } = await testDb(t)
  await import('@tsed/mongoose')
  const url = uri.replace(/\/\?/, `/${name}?`)
  const { service } = await boot(t, { mongooseConnectionId: 'default' }, { mongoose: [{ id: 'default', url }] })
  await service.now('tsed:welcome', { to: 'mongoose' })
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 1, { what: 'processed via mongoose' })
  assert.ok(greetings.includes('mongoose'))
})

test("another provider's $onInit can use MonqueService whatever the hook order", async (t) => {
  const { name } = await testDb(t)
  class Seeder {
    service = inject(MonqueService)
    async $onInit() {
      this.job = await this.service.every('1 hour', 'tsed:seeded')
    }
  }
  injectable(Seeder)
  const { service } = await boot(t, { connection: uri, database: name })
  assert.equal(DITest.get(Seeder).job.name, 'tsed:seeded')
  assert.equal((await service.queue.listSchedules('tsed:seeded')).length, 1)
})

// Worker options given to @Job reach the worker: a timeout and a rate limit.
const limitedRuns = []
class Limited {
  handle(job) {
    limitedRuns.push(job.id)
  }
}
Job('tsed:limited', { limiter: { max: 1, duration: 60_000 } })(Limited)
const timeoutReasons = []
class TimesOut {
  async handle(job) {
    await new Promise((resolve) => job.signal.addEventListener('abort', resolve))
    timeoutReasons.push(job.signal.reason.code)
  }
}
Job('tsed:times-out', { timeout: 100, maxRetries: 0 })(TimesOut)

test('@Job passes timeout and limiter to its worker', async (t) => {
  const { name, jobs } = await testDb(t)
  const { service } = await boot(t, { connection: `${uri.replace(/\/\?/, `/${name}?`)}` })
  await service.now('tsed:limited', { n: 1 })
  await service.now('tsed:limited', { n: 2 })
  const slow = await service.now('tsed:times-out', {})
  await eventually(async () => (await jobs.findOne({ _id: oid(slow.id) }))?.status === 'failed', { what: 'the slow job to time out' })
  assert.deepEqual(timeoutReasons, ['JOB_TIMEOUT'])
  await eventually(async () => (await jobs.countDocuments({ name: 'tsed:limited', status: 'completed' })) === 1, { what: 'one limited job' })
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(limitedRuns.length, 1, 'one start per minute')
  assert.equal(await jobs.countDocuments({ name: 'tsed:limited', status: 'pending' }), 1)
})

// Groups through Ts.ED: `groupConcurrency` on @Job, `group` on the service's enqueue.
const tenantRuns = []
let tenantRunning = new Map()
class TenantSync {
  async handle(job) {
    const now = (tenantRunning.get(job.group) ?? 0) + 1
    tenantRunning.set(job.group, now)
    tenantRuns.push({ group: job.group, atOnce: now })
    await new Promise((r) => setTimeout(r, 40))
    tenantRunning.set(job.group, tenantRunning.get(job.group) - 1)
  }
}
Job('tsed:tenant-sync', { concurrency: 4, groupConcurrency: 1 })(TenantSync)

test('@Job passes groupConcurrency; the service enqueues into groups', async (t) => {
  const { name } = await testDb(t)
  const { service } = await boot(t, { connection: `${uri.replace(/\/\?/, `/${name}?`)}` })
  // Held while the backlog is written: otherwise acme's first job could end and its
  // second start before globex's first is even enqueued.
  await service.queue.pause('tsed:tenant-sync')
  for (let i = 0; i < 3; i++) await service.enqueue('tsed:tenant-sync', { i }, { group: 'acme' })
  for (let i = 0; i < 2; i++) await service.enqueue('tsed:tenant-sync', { i }, { group: 'globex' })
  await service.queue.resume('tsed:tenant-sync')
  await eventually(async () => tenantRuns.length === 5, { what: 'five tenant jobs' })
  assert.ok(tenantRuns.every((r) => r.atOnce === 1), 'one job per group at a time')
  assert.equal(tenantRuns.filter((r) => r.group === 'acme').length, 3)
  // Fair turns: globex did not wait for all of acme's jobs.
  assert.ok(tenantRuns.findIndex((r) => r.group === 'globex') < 2)
  const completed = async () => (await service.queue.getGroups('tsed:tenant-sync')).map((g) => [g.group, g.counts.completed])
  await eventually(async () => JSON.stringify(await completed()) === JSON.stringify([['acme', 3], ['globex', 2]]), { what: 'both groups completed' })
})
