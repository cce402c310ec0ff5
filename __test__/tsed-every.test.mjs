// @Every: a fixed-interval schedule, registered idempotently like @Cron, that runs.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest } from '@tsed/di'
import { $asyncEmit } from '@tsed/hooks'

import { Every, MonqueService } from '../dist/tsed/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

const ticks = []
class Heartbeat {
  handle(job) {
    ticks.push(job.data)
  }
}
Every('1 second', { name: 'tsed-every:heartbeat', data: { from: 'every' } })(Heartbeat)

test('@Every registers one interval schedule across restarts and runs it', async (t) => {
  const { name, jobs } = await testDb(t)
  const settings = { logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name } }
  for (let start = 0; start < 2; start++) {
    await DITest.create(settings)
    const [schedule, ...more] = await DITest.get(MonqueService).queue.listSchedules('tsed-every:heartbeat')
    assert.equal(more.length, 0)
    assert.deepEqual(schedule.repeat, { everyMs: 1000 })
    await DITest.reset()
  }
  assert.equal(await jobs.countDocuments({ name: 'tsed-every:heartbeat' }), 1)
  await DITest.create(settings)
  t.after(() => DITest.reset())
  await $asyncEmit('$onReady')
  await eventually(() => ticks.length >= 1, { within: 4000, what: 'a tick' })
  assert.deepEqual(ticks[0], { from: 'every' })
})
