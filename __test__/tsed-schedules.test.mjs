// removeUndeclaredSchedules: a schedule no decorator declares any more (its handler was
// removed) is unscheduled at startup when asked; kept by default.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest } from '@tsed/di'

import { Monque } from '../dist/index.mjs'
import { Cron, MonqueService } from '../dist/tsed/index.mjs'
import { fast, testDb, uri } from './helpers.mjs'

class Reports {
  handle() {}
}
Cron('0 6 * * *', { name: 'tsed-schedules:daily' })(Reports)

test('a schedule nobody declares is removed at startup only with removeUndeclaredSchedules', async (t) => {
  const { name } = await testDb(t)
  // Left by an earlier deployment whose @Cron method was removed.
  const old = new Monque(uri, { ...fast, database: name, logger: false })
  await old.initialize()
  await old.schedule('0 7 * * *', 'tsed-schedules:removed-report', {})
  const names = async () => (await DITest.get(MonqueService).queue.listSchedules()).map((s) => s.name).sort()
  const settings = (remove) => ({
    logger: { level: 'off' },
    monque: { ...fast, logger: false, connection: uri, database: name, removeUndeclaredSchedules: remove },
  })

  await DITest.create(settings(undefined))
  assert.deepEqual(await names(), ['tsed-schedules:daily', 'tsed-schedules:removed-report'], 'kept by default')
  await DITest.reset()

  await DITest.create(settings(true))
  t.after(() => DITest.reset())
  assert.deepEqual(await names(), ['tsed-schedules:daily'])
  const removed = await old.getJobs({ name: 'tsed-schedules:removed-report' })
  assert.equal(removed[0].status, 'cancelled', 'the document stays, cancelled, as history')
})
