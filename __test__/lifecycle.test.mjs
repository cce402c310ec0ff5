// JS -> Rust -> MongoDB -> Rust -> JS handler -> Rust, against the real server.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Monque, UnrecoverableError, MonqueError } from '../dist/index.mjs'
import { eventually, fast, oid, testDb, uri } from './helpers.mjs'

test('a job enqueued from JS is processed by a JS handler and ends completed', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  const seen = []
  const events = []
  for (const e of ['job:start', 'job:complete']) monque.on(e, () => events.push(e))
  monque.register('greet', async (job) => {
    seen.push({ data: job.data, status: job.status, signal: job.signal instanceof AbortSignal })
  })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const when = new Date('2024-05-06T07:08:09.000Z')
  const job = await monque.enqueue('greet', { who: 'ada', when, nested: [1, { x: true }] })
  // Pending, or already handed to the idle local worker (src/handoff.rs).
  assert.ok(['pending', 'processing'].includes(job.status), job.status)
  assert.ok(job.createdAt instanceof Date)
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) }))?.status === 'completed', { what: 'completed' })
  assert.deepEqual(seen, [
    { data: { who: 'ada', when: when.toISOString(), nested: [1, { x: true }] }, status: 'processing', signal: true },
  ])
  const doc = await jobs.findOne({ _id: oid(job.id) })
  assert.ok(doc.completedAt instanceof Date)
  assert.equal(doc.claimId, undefined)
  await eventually(() => events.length === 2, { what: 'events' })
  assert.deepEqual(events, ['job:start', 'job:complete'])
})

test('a throwing handler fails the job with backoff; UnrecoverableError fails it at once', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, baseRetryInterval: 60_000, jitter: 0 })
  monque.register('flaky', async () => {
    throw new Error('upstream 503')
  })
  monque.register('doomed', () => {
    throw new UnrecoverableError('bad input')
  })
  const fails = []
  monque.on('job:fail', (e) => fails.push(e))
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const before = Date.now()
  const flaky = await monque.now('flaky', {})
  const doomed = await monque.now('doomed', {})
  await eventually(async () => fails.length === 2, { what: 'two failures' })
  const f = await jobs.findOne({ _id: oid(flaky.id) })
  assert.equal(f.status, 'pending')
  assert.equal(f.failCount, 1)
  assert.equal(f.failReason, 'upstream 503')
  // 2^1 × 60 s after the failure.
  const wait = f.nextRunAt.getTime() - before
  assert.ok(wait >= 120_000 && wait < 125_000, `retry in ${wait} ms`)
  const d = await jobs.findOne({ _id: oid(doomed.id) })
  assert.equal(d.status, 'failed')
  assert.equal(d.failCount, 1)
  const byName = Object.fromEntries(fails.map((e) => [e.job.name, e]))
  assert.equal(byName.flaky.willRetry, true)
  assert.equal(byName.doomed.willRetry, false)
  assert.equal(byName.doomed.error.message, 'bad input')
})

test('uniqueKey: concurrent duplicate enqueues from JS give one job', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  await monque.initialize()
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) => monque.enqueue('sync', { i }, { uniqueKey: 'user-7' })),
  )
  assert.equal(new Set(results.map((j) => j.id)).size, 1)
  assert.equal(await jobs.countDocuments({ name: 'sync' }), 1)
  const batch = await monque.enqueueMany([
    { name: 'sync', data: 1, options: { uniqueKey: 'user-7' } },
    { name: 'sync', data: 2, options: { uniqueKey: 'user-8' } },
    { name: 'other', data: 3 },
  ])
  assert.deepEqual(batch, { inserted: 2, deduplicated: 1 })
})

test('stop() with a timeout aborts job.signal and hands the job back to pending', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  let aborted = false
  let started
  const running = new Promise((r) => (started = r))
  monque.register('stuck', (job) => {
    started()
    return new Promise((resolve) => {
      job.signal.addEventListener('abort', () => {
        aborted = true
        setTimeout(resolve, 200) // finishes late: its result must not be written
      })
    })
  })
  const released = []
  monque.on('jobs:released', (e) => released.push(e.count))
  await monque.initialize()
  monque.start()
  const job = await monque.now('stuck', {})
  await running
  const t0 = Date.now()
  const handedBack = await monque.stop({ timeout: 300 })
  // The 300 ms timeout and the hand-back, not the handler that never settles.
  assert.ok(Date.now() - t0 < 5000)
  assert.equal(handedBack, 1)
  const doc = await jobs.findOne({ _id: oid(job.id) })
  assert.equal(doc.status, 'pending')
  assert.equal(doc.claimId, undefined)
  assert.equal(doc.leaseExpiresAt, undefined)
  await eventually(() => aborted, { what: 'signal aborted' })
  await new Promise((r) => setTimeout(r, 400))
  assert.equal((await jobs.findOne({ _id: oid(job.id) })).status, 'pending', 'late result was fenced off')
  assert.deepEqual(released, [1])
})

test('handlers that succeed the instant stop() aborts them are handed back, every time', async (t) => {
  const { name, jobs } = await testDb(t)
  for (let round = 0; round < 10; round++) {
    const monque = new Monque(uri, { ...fast, database: name, workerConcurrency: 2 })
    let started = 0
    monque.register(`race-${round}`, (job) => {
      started++
      return new Promise((resolve) => job.signal.addEventListener('abort', () => resolve('late')))
    })
    const released = []
    monque.on('jobs:released', (e) => released.push(e.count))
    await monque.initialize()
    monque.start()
    const a = await monque.now(`race-${round}`, {})
    const b = await monque.now(`race-${round}`, {})
    await eventually(() => started === 2, { what: 'both running' })
    const handedBack = await monque.stop({ timeout: 100 })
    assert.equal(handedBack, 2, `round ${round}`)
    await new Promise((r) => setTimeout(r, 50))
    for (const id of [a.id, b.id]) {
      const doc = await jobs.findOne({ _id: oid(id) })
      assert.equal(doc.status, 'pending', `round ${round}`)
      assert.equal(doc.result, undefined, `round ${round}: the late result is not written`)
    }
    assert.deepEqual(released, [2], `round ${round}`)
  }
})

test('jobs of one batch claim share a claimId, yet stop() aborts the signal of each', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, workerConcurrency: 3 })
  const aborted = new Set()
  const started = new Set()
  monque.register('batched', (job) => {
    started.add(job.id)
    return new Promise((resolve) => {
      job.signal.addEventListener('abort', () => {
        aborted.add(job.id)
        resolve()
      })
    })
  })
  await monque.initialize()
  // Enqueued before start(): the idle worker's first claim takes all three at once.
  await monque.enqueueMany([1, 2, 3].map((n) => ({ name: 'batched', data: { n } })))
  monque.start()
  await eventually(() => started.size === 3, { what: 'three running' })
  const claims = new Set((await jobs.find({ status: 'processing' }).toArray()).map((d) => String(d.claimId)))
  assert.equal(claims.size, 1, 'one claim took the three jobs')
  assert.equal(await monque.stop({ timeout: 200 }), 3)
  await eventually(() => aborted.size === 3, { what: 'every signal aborted' })
  assert.deepEqual([...aborted].sort(), [...started].sort())
  assert.equal(await jobs.countDocuments({ status: 'pending' }), 3)
})

test('a listener that throws does not break the worker', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  const errors = []
  monque.on('job:start', () => {
    throw new Error('listener bug')
  })
  monque.on('job:error', (e) => errors.push(e.error.message))
  monque.register('ok', async () => {})
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const a = await monque.now('ok', 1)
  const b = await monque.now('ok', 2)
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 2, { what: 'both completed' })
  assert.ok([a, b].every((j) => j.id))
  await eventually(() => errors.length === 2, { what: 'listener errors reported' })
  assert.deepEqual(errors, ['listener bug', 'listener bug'])
})

test('a native Db from the mongodb package works as the connection', async (t) => {
  const { db, jobs } = await testDb(t)
  const monque = new Monque(db, fast)
  monque.register('viaDb', async () => {})
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('viaDb', { ok: true })
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) }))?.status === 'completed', { what: 'completed' })
  assert.ok(['change-stream', 'polling'].includes(monque.notifyMode))
  assert.equal(await monque.isHealthy(), true)
})

test('bad input gets a typed error and writes nothing', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, maxPayloadSize: 1000 })
  await monque.initialize()
  const circular = {}
  circular.self = circular
  const cases = [
    [() => monque.now('', {}), 'INVALID_JOB_NAME'],
    [() => monque.now('x'.repeat(256), {}), 'INVALID_JOB_NAME'],
    [() => monque.now('bad\u0007name', {}), 'INVALID_JOB_NAME'],
    [() => monque.now('ok', { n: 10n }), 'INVALID_DATA'],
    [() => monque.now('ok', circular), 'INVALID_DATA'],
    [() => monque.now('ok', { fn() {} }), 'INVALID_DATA'],
    [() => monque.now('ok', { n: NaN }), 'INVALID_DATA'],
    [() => monque.now('ok', { $set: { a: 1 } }), 'INVALID_DATA'],
    [() => monque.now('ok', { 'a.b': 1 }), 'INVALID_DATA'],
    [() => monque.now('ok', { s: 'x'.repeat(2000) }), 'PAYLOAD_TOO_LARGE'],
    [() => monque.enqueue('ok', {}, { runAt: new Date('nope') }), 'INVALID_OPTION'],
    [() => monque.enqueue('ok', {}, { priority: 1.5 }), 'INVALID_OPTION'],
    [() => monque.enqueue('ok', {}, { timeout: 0 }), 'INVALID_OPTION'],
    [() => monque.enqueue('ok', {}, { timeout: NaN }), 'INVALID_OPTION'],
    [() => monque.enqueueMany([{ name: 'ok', data: 1 }, { name: '', data: 2 }]), 'INVALID_JOB_NAME'],
  ]
  for (const [call, code] of cases) {
    await assert.rejects(call, (err) => err instanceof MonqueError && err.code === code, `expected ${code}`)
  }
  // What JSON would silently store as {} (or mangle) is refused, naming where it is.
  const lossy = [
    [{ tags: new Set(['a']) }, 'at tags is a Set'],
    [{ a: { byId: new Map([['k', 1]]) } }, 'at a.byId is a Map'],
    [{ list: [1, /x/] }, 'at list[1] is a RegExp'],
    [{ err: new Error('boom') }, 'at err is an Error'],
    [{ bytes: new Uint8Array([1, 2]) }, 'at bytes is a typed array'],
  ]
  for (const [data, where] of lossy) {
    await assert.rejects(monque.now('ok', data), (err) => err.code === 'INVALID_DATA' && err.message.includes(where), where)
  }
  // Buffer and URL carry their own toJSON: stored as { type, data } and as the href.
  const kept = await monque.now('ok', { buf: Buffer.from([1, 2]), url: new URL('https://example.com/a?b=1') })
  assert.deepEqual(kept.data, { buf: { type: 'Buffer', data: [1, 2] }, url: 'https://example.com/a?b=1' })
  await jobs.deleteMany({})
  // Over 16 MB, with the default maxPayloadSize (1 MiB); and no limit above MongoDB's.
  const defaults = new Monque(uri, { ...fast, database: name })
  await defaults.initialize()
  await assert.rejects(defaults.now('ok', { s: 'x'.repeat(17 * 1024 * 1024) }), { code: 'PAYLOAD_TOO_LARGE' })
  await assert.rejects(new Monque(uri, { maxPayloadSize: 17 * 1024 * 1024 }).initialize(), { code: 'INVALID_OPTION' })
  assert.equal(await jobs.countDocuments({}), 0)
  assert.throws(() => monque.register('h', 'not a function'), { code: 'INVALID_HANDLER' })
  assert.throws(() => monque.register('', async () => {}), { code: 'INVALID_JOB_NAME' })
  monque.register('dup', async () => {})
  assert.throws(() => monque.register('dup', async () => {}), { code: 'WORKER_EXISTS' })
  assert.throws(() => new Monque(uri, { pollInterval: NaN }), { code: 'INVALID_OPTION' })
  assert.throws(() => new Monque(uri, { workerConcurrency: -1 }), { code: 'INVALID_OPTION' })
  assert.throws(() => new Monque('http://nope'), { code: 'INVALID_URI' })
  assert.throws(() => new Monque({}), { code: 'INVALID_CONNECTION' })
  await assert.rejects(new Monque(uri, { heartbeatInterval: 5000, leaseDuration: 1000 }).initialize(), { code: 'INVALID_OPTION' })
  assert.throws(() => new Monque(uri).start(), { code: 'NOT_INITIALIZED' })
})

test('a URI that points nowhere fails with CONNECTION_ERROR within the timeout', async () => {
  const monque = new Monque('mongodb://127.0.0.1:1/?directConnection=true', { serverSelectionTimeout: 500 })
  const t0 = Date.now()
  const err = await monque.initialize().then(
    () => assert.fail('connected to nothing'),
    (e) => e,
  )
  assert.equal(err.code, 'CONNECTION_ERROR')
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`)
  // One line that says where and why; the driver's topology dump only in `detail`.
  assert.match(err.message, /^cannot reach MongoDB at 127\.0\.0\.1:1: .*refused.* \(waited 500ms\)$/i)
  assert.ok(!err.message.includes('Topology'), err.message)
  assert.match(err.detail, /Topology/)
})

test('a handler result JSON cannot hold does not turn success into a retry', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  monque.register('bigint', async () => 10n)
  const warnings = []
  const onWarning = (w) => warnings.push(w.message)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('bigint', {})
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) }))?.status === 'completed', { what: 'completed' })
  assert.equal((await jobs.findOne({ _id: oid(job.id) })).failCount, 0)
  await eventually(() => warnings.some((m) => m.includes('BigInt')), { what: 'warning' })
})

test('a Mongoose connection works as the connection', async (t) => {
  const { default: mongoose } = await import('mongoose')
  const { name, jobs } = await testDb(t)
  const conn = await mongoose.createConnection(uri, { dbName: name }).asPromise()
  t.after(() => conn.close())
  const monque = new Monque(conn, fast)
  monque.register('viaMongoose', async (job) => job.data)
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('viaMongoose', { ok: 1 })
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) }))?.status === 'completed', { what: 'completed' })
  assert.equal(await conn.db.collection('monque_jobs').countDocuments({ status: 'completed' }), 1)
})

test("a handler's resolved value is stored as the job's result and sent with job:complete", async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  const completions = []
  monque.on('job:complete', ({ job }) => completions.push(job))
  monque.register('add', async (job) => ({ sum: job.data.a + job.data.b, when: new Date(0) }))
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('add', { a: 2, b: 3 })
  await eventually(async () => (await monque.getJob(job.id))?.status === 'completed', { what: 'completed' })
  const expected = { sum: 5, when: '1970-01-01T00:00:00.000Z' }
  assert.deepEqual((await monque.getJob(job.id)).result, expected)
  assert.deepEqual(completions.find((j) => j.id === job.id)?.result, expected)
})

test('job.updateProgress stores progress visible to another instance and emits job:progress', async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name })
  const reader = new Monque(uri, { ...fast, database: name })
  const events = []
  monque.on('job:progress', (e) => events.push(e))
  let release
  const gate = new Promise((r) => (release = r))
  const reported = []
  monque.register('report', async (job) => {
    reported.push(await job.updateProgress({ pct: 40 }))
    await assert.rejects(job.updateProgress('x'.repeat(5000)), { code: 'PAYLOAD_TOO_LARGE' })
    await gate
  })
  await monque.initialize()
  await reader.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('report', {})
  await eventually(async () => (await reader.getJob(job.id))?.progress?.pct === 40, { what: 'progress seen by another instance' })
  assert.deepEqual(reported, [true])
  assert.deepEqual(events, [{ id: job.id, progress: { pct: 40 } }])
  release()
  await eventually(async () => (await reader.getJob(job.id))?.status === 'completed', { what: 'completed' })
})

test('job.snooze(ms) runs the job again after the delay without counting a failure', async (t) => {
  const { name } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, maxRetries: 0 })
  const snoozed = []
  const failed = []
  monque.on('job:snoozed', (e) => snoozed.push(e))
  monque.on('job:fail', (e) => failed.push(e))
  const starts = []
  const refused = []
  monque.register('poll-upstream', async (job) => {
    starts.push(Date.now())
    for (const bad of [0, -1, Number.NaN, '100', 400 * 86_400_000]) {
      try {
        job.snooze(bad)
      } catch (err) {
        refused.push(err.code)
      }
    }
    if (starts.length === 1) return job.snooze(300) // returned
    if (starts.length === 2) {
      job.snooze(300)
      throw new Error('upstream not ready') // thrown after snoozing: still a snooze
    }
    return 'ready'
  })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('poll-upstream', {})
  await eventually(async () => (await monque.getJob(job.id)).status === 'completed', { what: 'completed' })
  const done = await monque.getJob(job.id)
  assert.equal(done.failCount, 0)
  assert.equal(done.failReason, undefined)
  assert.equal(done.result, 'ready')
  assert.equal(starts.length, 3)
  assert.ok(starts[1] - starts[0] >= 300 && starts[2] - starts[1] >= 300, `runs at ${starts.map((s) => s - starts[0])}`)
  assert.equal(failed.length, 0)
  assert.equal(snoozed.length, 2)
  assert.equal(snoozed[0].job.status, 'pending')
  assert.equal(snoozed[0].delay, 300)
  assert.ok(snoozed[0].nextRunAt instanceof Date)
  assert.deepEqual(refused, Array(15).fill('INVALID_OPTION'))
})

test('a bad limiter is refused by register() with INVALID_OPTION', () => {
  const monque = new Monque(uri, { logger: false })
  for (const limiter of [null, 5, {}, { max: 0, duration: 1000 }, { max: 1.5, duration: 1000 }, { max: 1, duration: 0 }, { max: 1, duration: '1s' }, { max: 1, duration: 10, per: 'x' }]) {
    assert.throws(() => monque.register('x', async () => {}, { limiter }), { code: 'INVALID_OPTION' }, JSON.stringify(limiter))
  }
  monque.register('x', async () => {}, { limiter: { max: 1, duration: 10 } })
})

test('dependsOn: a job waits for its dependencies, and bad dependencies are refused', async (t) => {
  const { name, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database: name, logger: false })
  const order = []
  let release
  const gate = new Promise((r) => (release = r))
  monque.register('step', async (job) => {
    if (job.data.id === 'first') await gate
    order.push(job.data.id)
  })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const first = await monque.now('step', { id: 'first' })
  const second = await monque.enqueue('step', { id: 'second' }, { dependsOn: [oid(first.id)] })
  assert.equal(second.status, 'waiting')
  assert.deepEqual(second.dependsOn, [first.id])
  assert.equal((await monque.getQueueStats()).waiting, 1)
  await new Promise((r) => setTimeout(r, 200))
  assert.equal((await monque.getJob(second.id)).status, 'waiting')
  release()
  await eventually(async () => (await monque.getJob(second.id)).status === 'completed', { what: 'the dependent job' })
  assert.deepEqual(order, ['first', 'second'])

  const before = await jobs.countDocuments()
  const code = (c) => (err) => err.code === c
  await assert.rejects(monque.enqueue('step', {}, { dependsOn: ['0123456789abcdef01234567'] }), code('INVALID_DEPENDENCY'))
  await assert.rejects(monque.enqueue('step', {}, { dependsOn: ['nope'] }), code('INVALID_JOB_ID'))
  await assert.rejects(monque.enqueue('step', {}, { dependsOn: first.id }), code('INVALID_OPTION'))
  await assert.rejects(monque.enqueue('step', {}, { dependsOn: [first.id], uniqueKey: 'k' }), code('INVALID_OPTION'))
  await assert.rejects(monque.enqueueMany([{ name: 'step', data: {}, options: { dependsOn: [first.id] } }]), code('INVALID_OPTION'))
  assert.equal(await jobs.countDocuments(), before)
})

test('a failure keeps its stack and its attempts; retries log a warning, a final failure an error with the stack', async (t) => {
  const { name, jobs } = await testDb(t)
  const lines = []
  const logger = {
    debug() {},
    info() {},
    warn: (fields, message) => lines.push({ level: 'warn', message, ...fields }),
    error: (fields, message) => lines.push({ level: 'error', message, ...fields }),
  }
  const monque = new Monque(uri, { ...fast, database: name, maxRetries: 1, baseRetryInterval: 20, maxBackoffDelay: 50, jitter: 0, logger })
  function chargeTheCard() {
    throw new Error('card declined')
  }
  monque.register('charge', async () => chargeTheCard())
  const failures = []
  monque.on('job:fail', (e) => failures.push(e))
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.now('charge', {})
  await eventually(async () => (await monque.getJob(job.id))?.status === 'failed', { what: 'failed for good' })
  const failed = await monque.getJob(job.id)
  assert.equal(failed.failReason, 'card declined')
  assert.match(failed.failStack, /^Error: card declined\n\s+at chargeTheCard /)
  assert.equal(failed.attempts.length, 2)
  for (const a of failed.attempts) {
    assert.equal(a.outcome, 'failed')
    assert.equal(a.error, 'card declined')
    assert.ok(a.startedAt instanceof Date)
    assert.equal(typeof a.durationMs, 'number')
  }
  // The event's error carries the handler's stack, not the dispatcher's.
  await eventually(() => failures.length === 2, { what: 'two job:fail events' })
  assert.match(failures[1].error.stack, /at chargeTheCard /)
  const retry = lines.find((l) => l.message === 'job failed; will retry')
  assert.equal(retry?.level, 'warn')
  const final = lines.find((l) => l.message === 'job failed for good')
  assert.equal(final?.level, 'error')
  assert.match(final.stack, /at chargeTheCard /)
  assert.equal((await jobs.findOne({})).failStack, failed.failStack)
})

test('writeConcern and readConcern reach the core: an unsatisfiable w is refused by the server, w: 0 and bad levels up front', async (t) => {
  const { name } = await testDb(t)
  const two = new Monque(uri, { ...fast, database: name, logger: false, writeConcern: { w: 2, wtimeoutMS: 500 } })
  await assert.rejects(two.initialize(), (err) => err.code === 'DATABASE_ERROR' && /data-bearing/.test(err.message))
  const majority = new Monque(uri, { ...fast, database: name, logger: false, writeConcern: { w: 'majority' }, readConcern: 'majority' })
  await majority.initialize()
  assert.equal((await majority.now('ok', {})).status, 'pending')
  assert.equal((await majority.getJobs()).length, 1)
  await assert.rejects(new Monque(uri, { writeConcern: { w: 0 } }).initialize(), { code: 'INVALID_OPTION' })
  await assert.rejects(new Monque(uri, { readConcern: 'eventual' }).initialize(), { code: 'INVALID_OPTION' })
})
