// Handler classes follow Ts.ED's scopes: singleton by default, request scope on request;
// the job is in the DI context either way.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest, inject, ProviderScope } from '@tsed/di'
import { $asyncEmit } from '@tsed/hooks'

import { currentJob, Job, JobController, MONQUE_JOB, MonqueService } from '../dist/tsed/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

const singletonRuns = []
let singletonsMade = 0
class Reports {
  constructor() {
    singletonsMade++
  }
  async build(job) {
    await new Promise((r) => setTimeout(r, 50)) // two jobs overlap
    singletonRuns.push({ instance: this, job, current: currentJob() })
  }
}
Job('build', { concurrency: 2 })(Reports.prototype, 'build')
JobController('scope-reports')(Reports)

const scopedRuns = []
class PerJobReports {
  job = inject(MONQUE_JOB)
  build(job) {
    scopedRuns.push({ instance: this, same: this.job === job && currentJob() === job })
  }
}
Job('build')(PerJobReports.prototype, 'build')
JobController('scope-per-job', { scope: ProviderScope.REQUEST })(PerJobReports)

class PerJobClass {
  job = inject(MONQUE_JOB)
  handle(job) {
    scopedRuns.push({ instance: this, same: this.job === job })
  }
}
Job('scope-class', { scope: ProviderScope.REQUEST })(PerJobClass)

test('a @JobController is a singleton by default; currentJob() still gives each run its job', async (t) => {
  const { name } = await testDb(t)
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name } })
  t.after(() => DITest.reset())
  await $asyncEmit('$onReady')
  const service = DITest.get(MonqueService)
  const a = await service.now('scope-reports.build', { n: 1 })
  const b = await service.now('scope-reports.build', { n: 2 })
  await eventually(() => singletonRuns.length === 2, { what: 'both runs' })
  assert.equal(singletonsMade, 1, 'built once')
  assert.ok(singletonRuns.every((r) => r.instance === DITest.get(Reports)), 'the injector singleton runs every job')
  assert.deepEqual(singletonRuns.map((r) => r.current.id).sort(), [a.id, b.id].sort())
  assert.ok(singletonRuns.every((r) => r.current === r.job), 'each overlapping run sees its own job')
})

test('request scope on request: a fresh instance per job with the job injected', async (t) => {
  const { name } = await testDb(t)
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name } })
  t.after(() => DITest.reset())
  await $asyncEmit('$onReady')
  const service = DITest.get(MonqueService)
  await service.now('scope-per-job.build', {})
  await service.now('scope-per-job.build', {})
  await service.now('scope-class', {})
  await eventually(() => scopedRuns.length === 3, { what: 'three runs' })
  assert.equal(new Set(scopedRuns.map((r) => r.instance)).size, 3)
  assert.ok(scopedRuns.every((r) => r.same))
})
