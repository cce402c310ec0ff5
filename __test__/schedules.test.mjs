// Recurring jobs from JS, against the real server, including schedulers in separate processes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

import { Monque, MonqueError } from '../dist/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

const run = promisify(execFile)

test('four processes scheduling the same job at once leave one schedule', async (t) => {
  const { name, jobs, db } = await testDb(t)
  const script = `
    import { Monque } from ${JSON.stringify(new URL('../dist/index.mjs', import.meta.url).href)}
    const monque = new Monque(process.env.URI, { database: process.env.DB })
    const job = await monque.schedule('0 6 * * 1-5', 'morning-report', { to: 'ops' }, { timezone: 'Europe/Berlin' })
    console.log(job.id)
  `
  const env = { ...process.env, URI: uri, DB: name }
  const outputs = await Promise.all(
    [1, 2, 3, 4].map(() => run(process.execPath, ['--input-type=module', '-e', script], { env })),
  )
  const ids = outputs.map((o) => o.stdout.trim())
  assert.equal(new Set(ids).size, 1, `every process got the same schedule: ${ids}`)
  assert.equal(await jobs.countDocuments({ name: 'morning-report' }), 1)
  assert.equal(await db.collection('monque_jobs_unique').countDocuments({}), 1)
  const doc = await jobs.findOne({})
  assert.deepEqual(doc.repeat, { cron: '0 6 * * 1-5', timezone: 'Europe/Berlin' })
  assert.equal(doc.uniqueKey, 'schedule:morning-report')
})

test('a cron schedule runs a JS handler on every slot and stays one pending job', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  const due = []
  monque.register('tick', async (job) => {
    due.push(job.nextRunAt.getTime())
  })
  const completions = []
  monque.on('job:complete', ({ job }) => completions.push(job))
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.schedule('* * * * * *', 'tick')
  assert.deepEqual(job.repeat, { cron: '* * * * * *', timezone: 'UTC' })
  await eventually(() => due.length >= 2, { within: 8000, what: 'two runs' })
  assert.ok(due.every((t) => t % 1000 === 0), `runs are due on whole seconds: ${due}`)
  assert.ok(due[1] > due[0])
  await eventually(() => completions.length >= 1, { what: 'job:complete' })
  assert.equal(completions[0].status, 'pending', 'job:complete carries the rescheduled job')
  assert.ok(completions[0].nextRunAt.getTime() > due[0])
  assert.equal(await jobs.countDocuments({}), 1)
})

test('every(), listSchedules() and unschedule()', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  await monque.initialize()
  const before = Date.now()
  const a = await monque.every('5 minutes', 'cleanup', { dryRun: false })
  assert.deepEqual(a.repeat, { everyMs: 300_000 })
  assert.ok(a.nextRunAt.getTime() >= before + 300_000)
  const again = await monque.every(300_000, 'cleanup', { dryRun: false })
  assert.equal(again.id, a.id, 'same interval as a number: same schedule')
  await monque.schedule('@daily', 'rollup', {}, { uniqueKey: 'eu', timezone: 'Europe/Paris' })
  await monque.schedule('@daily', 'rollup', {}, { uniqueKey: 'us', timezone: 'America/Chicago' })

  const all = await monque.listSchedules()
  assert.equal(all.length, 3)
  assert.ok(all.every((j, i) => i === 0 || all[i - 1].nextRunAt <= j.nextRunAt), 'soonest first')
  assert.equal((await monque.listSchedules('rollup')).length, 2)

  assert.equal(await monque.unschedule('rollup', 'eu'), true)
  assert.equal(await monque.unschedule('rollup', 'eu'), false)
  assert.deepEqual(
    (await monque.listSchedules('rollup')).map((j) => j.uniqueKey),
    ['us'],
  )
  assert.equal((await jobs.findOne({ uniqueKey: 'eu' })).status, 'cancelled')
})

test('bad schedules throw typed errors and write nothing', async (t) => {
  const { name, jobs, db } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  await monque.initialize()
  const cases = [
    [() => monque.schedule('every day', 'x'), 'INVALID_CRON'],
    [() => monque.schedule('0 9 * * 9', 'x'), 'INVALID_CRON'],
    [() => monque.schedule(42, 'x'), 'INVALID_CRON'],
    [() => monque.schedule('0 9 * * *', 'x', {}, { timezone: 'Moon/Base' }), 'INVALID_TIMEZONE'],
    [() => monque.every('soon', 'x'), 'INVALID_INTERVAL'],
    [() => monque.every(Number.NaN, 'x'), 'INVALID_INTERVAL'],
    [() => monque.every(500, 'x'), 'INVALID_INTERVAL'],
    [() => monque.every('1 minute', 'x', {}, { timezone: 'UTC' }), 'INVALID_OPTION'],
    [() => monque.schedule('0 9 * * *', 'x', { $bad: 1 }), 'INVALID_DATA'],
    [() => monque.schedule('0 9 * * *', ''), 'INVALID_JOB_NAME'],
  ]
  for (const [call, code] of cases) {
    await assert.rejects(call, (err) => err instanceof MonqueError && err.code === code, code)
  }
  assert.equal(await jobs.countDocuments({}), 0)
  assert.equal(await db.collection('monque_jobs_unique').countDocuments({}), 0)
})
