// The documented testing path: run a @Job handler with a given job under Ts.ED's test
// injector, without a queue or worker loop.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest, inject, injectable, ProviderScope } from '@tsed/di'

import { currentJob, Job, JobController, MONQUE_JOB, MonqueTest } from '../dist/tsed/index.mjs'
import { fast, testDb, uri } from './helpers.mjs'

class Mailer {
  sent = []
  send(to) {
    this.sent.push(to)
  }
}
injectable(Mailer)

class SendWelcome {
  mailer = inject(Mailer)
  job = inject(MONQUE_JOB)
  async handle(job) {
    await job.updateProgress(50)
    this.mailer.send(job.data.to)
    return { sentTo: job.data.to, sameJob: this.job === job && currentJob() === job }
  }
}
Job('tsed-test:welcome', { scope: ProviderScope.REQUEST })(SendWelcome)

class Reports {
  mailer = inject(Mailer)
  daily() {
    if (!currentJob().data.range) throw new Error('no range')
    return currentJob().id
  }
}
Job('daily')(Reports.prototype, 'daily')
JobController('tsed-test-reports')(Reports)

test('MonqueTest.runJob runs a handler with a given job in its DI context, no database needed', async (t) => {
  await DITest.create({ logger: { level: 'off' }, monque: { enabled: false } })
  t.after(() => DITest.reset())
  const job = { data: { to: 'ada@example.com' } }
  assert.deepEqual(await MonqueTest.runJob('tsed-test:welcome', job), { sentTo: 'ada@example.com', sameJob: true })
  assert.deepEqual(DITest.get(Mailer).sent, ['ada@example.com'])
  assert.equal(await MonqueTest.runJob('tsed-test-reports.daily', { id: '0123456789abcdef01234567', data: { range: 'w1' } }), '0123456789abcdef01234567')
  await assert.rejects(MonqueTest.runJob('tsed-test-reports.daily', { data: {} }), /no range/)
  await assert.rejects(MonqueTest.runJob('nope'), (err) => err.code === 'INVALID_JOB_NAME')
})

test('with a configured queue, MonqueTest.runJob still runs nothing else (producer-only app)', async (t) => {
  const { name, jobs } = await testDb(t)
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name, disableJobProcessing: true } })
  t.after(() => DITest.reset())
  await MonqueTest.runJob('tsed-test:welcome', { data: { to: 'grace@example.com' } })
  assert.deepEqual(DITest.get(Mailer).sent, ['grace@example.com'])
  assert.equal(await jobs.countDocuments({}), 0, 'nothing was enqueued or stored')
})
