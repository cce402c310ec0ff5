// MonqueService: events subscribed to at any time, and a clear error once stopped.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { DITest, inject, injectable } from '@tsed/di'
import { $asyncEmit } from '@tsed/hooks'

import { Job, MonqueService } from '../dist/tsed/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

class Quick {
  handle(job) {
    return job.data.n
  }
}
Job('tsed-svc:quick')(Quick)

// A provider subscribing in its constructor and its $onInit, before the queue exists.
const completed = []
const started = []
let onceCalls = 0
class Watcher {
  monque = inject(MonqueService)
  constructor() {
    this.monque.on('job:complete', ({ job }) => completed.push(job.data.n))
  }
  $onInit() {
    this.monque.once('job:start', () => onceCalls++)
    this.monque.on('job:start', (job) => started.push(job.data.n))
  }
}
injectable(Watcher)

test('listeners added in a constructor or $onInit are attached once the queue exists; once and off work', async (t) => {
  const { name } = await testDb(t)
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name } })
  t.after(() => DITest.reset())
  DITest.get(Watcher)
  await $asyncEmit('$onReady')
  const service = DITest.get(MonqueService)
  await service.now('tsed-svc:quick', { n: 1 })
  await eventually(() => completed.includes(1), { what: 'job:complete seen by the early listener' })
  assert.deepEqual(started, [1])
  const late = []
  const listener = ({ job }) => late.push(job.data.n)
  service.on('job:complete', listener)
  await service.now('tsed-svc:quick', { n: 2 })
  await eventually(() => late.includes(2), { what: 'the late listener' })
  service.off('job:complete', listener)
  await service.now('tsed-svc:quick', { n: 3 })
  await eventually(() => completed.includes(3), { what: 'job 3' })
  assert.deepEqual(late, [2], 'off() detached it')
  assert.equal(onceCalls, 1, 'once() fired for the first start only')
})

test('after shutdown the service says the queue is stopped (QUEUE_STOPPED)', async (t) => {
  const { name } = await testDb(t)
  await DITest.create({ logger: { level: 'off' }, monque: { ...fast, logger: false, connection: uri, database: name } })
  const service = DITest.get(MonqueService)
  await service.ready()
  await DITest.reset() // what platform.stop() does
  for (const call of [() => service.enqueue('tsed-svc:quick', {}), async () => service.queue, () => service.ready()]) {
    await assert.rejects(call, (err) => err.code === 'QUEUE_STOPPED' && /stopped/.test(err.message) && !/is MonqueModule loaded/.test(err.message))
  }
})
