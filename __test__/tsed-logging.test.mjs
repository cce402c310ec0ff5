// Logs go through Ts.ED's logger by default: a startup summary, retries and failures
// (with the handler's stack), one line per event.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest } from '@tsed/di'
import { $asyncEmit } from '@tsed/hooks'
import { $log } from '@tsed/logger'

import { Cron, Every, Job, JobController } from '../dist/tsed/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

/** What reached Ts.ED's logger (its default instance, `$log`), by level. */
const lines = []
for (const level of ['debug', 'info', 'warn', 'error']) {
  $log[level] = (...args) => lines.push({ level, args })
}

function explodeInHandler() {
  throw new Error('boom')
}
class Flaky {
  handle() {
    explodeInHandler()
  }
}
Job('tsed-log:flaky', { maxRetries: 1, concurrency: 2 })(Flaky)

class Nightly {
  report() {}
  sweep() {}
}
Cron('0 3 * * *', { timezone: 'Europe/Berlin' })(Nightly.prototype, 'report')
Every('1 hour')(Nightly.prototype, 'sweep')
JobController('nightly')(Nightly)

test('events go through the Ts.ED logger as single lines; failures carry the stack', async (t) => {
  const { name, jobs } = await testDb(t)
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, baseRetryInterval: 50, jitter: 0, connection: uri, database: name } })
  t.after(() => DITest.reset())
  await $asyncEmit('$onReady')
  await eventually(() => lines.some((l) => String(l.args[0]).startsWith('monque: started')), { what: 'the startup line' })
  const started = lines.find((l) => String(l.args[0]).startsWith('monque: started'))
  assert.equal(started.level, 'info')
  assert.deepEqual(started.args.length, 1)
  assert.doesNotMatch(started.args[0], /\n/)
  assert.match(started.args[0], /workers=3\[tsed-log:flaky×2,nightly\.report,nightly\.sweep\]/)
  assert.match(started.args[0], /schedules=2\[nightly\.report@"0 3 \* \* \*"\(Europe\/Berlin\),nightly\.sweep@every 1 hour\]/)
  assert.match(started.args[0], /notify=change-stream/)

  const job = await DITest.get((await import('../dist/tsed/index.mjs')).MonqueService).now('tsed-log:flaky', {})
  await eventually(async () => (await jobs.findOne({ name: 'tsed-log:flaky' }))?.status === 'failed', { what: 'the job to fail for good' })
  await eventually(() => lines.some((l) => /job failed for good/.test(l.args[0])), { what: 'the final failure line' })
  const retry = lines.find((l) => /^monque: job failed; will retry /.test(l.args[0]))
  const final = lines.find((l) => /^monque: job failed for good /.test(l.args[0]))
  // The level is the core's choice (see the README's logging section); never debug.
  assert.ok(['info', 'warn', 'error'].includes(retry.level) && ['warn', 'error'].includes(final.level))
  for (const { args } of [retry, final]) {
    assert.equal(args.length, 1, 'one string, no object dumped after it')
    const [first, ...stack] = args[0].split('\n')
    assert.match(first, new RegExp(`event=job:fail jobId=${job.id} name=tsed-log:flaky .*error=boom`))
    assert.match(stack[0], /^\s+Error: boom/)
    assert.ok(stack.some((s) => /at explodeInHandler/.test(s)), 'the stack names the handler code')
  }
  // Every line: a string and nothing else.
  assert.ok(lines.filter((l) => String(l.args[0]).startsWith('monque:')).every((l) => l.args.length === 1 && typeof l.args[0] === 'string'))
})

test('an explicit `logger: false` keeps the queue quiet', async (t) => {
  const { name } = await testDb(t)
  lines.length = 0
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name } })
  t.after(() => DITest.reset())
  const service = DITest.get((await import('../dist/tsed/index.mjs')).MonqueService)
  await $asyncEmit('$onReady')
  await service.now('tsed-log:flaky', {})
  await new Promise((r) => setTimeout(r, 500))
  assert.ok(!lines.some((l) => /job failed/.test(String(l.args[0]))))
})
