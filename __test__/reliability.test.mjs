// Failure modes with real OS processes and the real server: a worker killed with
// SIGKILL mid-run, several processes racing for the same jobs, SIGTERM under load.
// Every execution is recorded (start, end, pid) by the handler in `executions`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import v8 from 'node:v8'
import vm from 'node:vm'

import { ObjectId } from 'mongodb'

import { Monque } from '../dist/index.mjs'
import { startProxy } from './reliability/proxy.mjs'
import { eventually, oid, testDb, uri } from './helpers.mjs'

const WORKER = new URL('./reliability/worker.mjs', import.meta.url)
const LEASE = 2000
const HEARTBEAT = 400

function startWorker(config, env = {}) {
  const child = fork(WORKER, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => m.type === 'ready' && resolve())
    exited.then(() => reject(new Error('worker exited before it was ready')))
  })
  return { child, ready, exited, message: (type) => new Promise((r) => child.on('message', (m) => m.type === type && r(m))) }
}

async function enqueue(name, database, count) {
  const producer = new Monque(uri, { database, logger: false })
  await producer.initialize()
  const result = await producer.enqueueMany(Array.from({ length: count }, (_, i) => ({ name, data: { i } })))
  assert.equal(result.inserted, count)
}

/** Executions grouped by job, each job's sorted by start. */
async function executionsByJob(db) {
  const byJob = new Map()
  for (const e of await db.collection('executions').find().sort({ start: 1 }).toArray()) {
    if (!byJob.has(e.jobId)) byJob.set(e.jobId, [])
    byJob.get(e.jobId).push(e)
  }
  return byJob
}

/** Asserts no two executions of one job overlap; an unfinished one ended at `killedAt`. */
function assertNoOverlap(byJob, killedAt) {
  let checked = 0
  for (const [jobId, runs] of byJob) {
    for (let i = 1; i < runs.length; i++) {
      const previousEnd = runs[i - 1].end ?? killedAt
      assert.ok(previousEnd, `job ${jobId}: an execution never ended and no process was killed`)
      assert.ok(runs[i].start >= previousEnd, `job ${jobId}: execution ${i} started before execution ${i - 1} ended`)
      checked++
    }
  }
  return checked
}

test('kill -9 of one of 3 workers mid-run: every job completes, its jobs run again after their lease, none overlaps', async (t) => {
  const { db, name: database, jobs } = await testDb(t)
  await enqueue('crash', database, 300)
  const config = { database, name: 'crash', concurrency: 5, workMs: [50, 200], leaseDuration: LEASE, heartbeatInterval: HEARTBEAT }
  const workers = [startWorker(config), startWorker(config), startWorker(config)]
  t.after(() => workers.forEach((w) => w.child.kill('SIGKILL')))
  await Promise.all(workers.map((w) => w.ready))

  const victim = workers[0]
  await eventually(async () => (await db.collection('executions').countDocuments({ pid: victim.child.pid })) >= 10, {
    within: 20000,
    what: 'the victim to be busy',
  })
  victim.child.kill('SIGKILL')
  const killedAt = new Date()
  await victim.exited

  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 300, { within: 60000, what: 'all 300 completed' })
  assert.equal(await jobs.countDocuments(), 300, 'no job lost or duplicated')

  const byJob = await executionsByJob(db)
  assert.equal(byJob.size, 300)
  const cut = [...byJob.values()].filter((runs) => runs.some((e) => e.pid === victim.child.pid && !e.end))
  assert.ok(cut.length > 0, 'the victim had jobs in flight')
  const recoveries = cut.map((runs) => {
    const rerun = runs.find((e) => e.start > killedAt && e.end)
    assert.ok(rerun, 'a job cut by the kill ran again to the end')
    return rerun.start - killedAt
  })
  const overlapsChecked = assertNoOverlap(byJob, killedAt)
  t.diagnostic(
    `cut by the kill: ${cut.length} jobs; re-run ${Math.min(...recoveries)}-${Math.max(...recoveries)} ms after it ` +
      `(lease ${LEASE} ms, heartbeat ${HEARTBEAT} ms); ${overlapsChecked} re-executions checked for overlap`,
  )
})

test('a poison job that kills its worker on every run stalls, then fails through the retry path; the other jobs run', async (t) => {
  const { db, name: database, jobs } = await testDb(t)
  const producer = new Monque(uri, { database, logger: false })
  await producer.initialize()
  const poison = await producer.now('crashy', { poison: true })
  const config = {
    // One at a time: a job running beside the poison job in its process dies with it
    // and stalls too (see the README); here the others run between the crashes.
    database, name: 'crashy', concurrency: 1, workMs: [10, 20], leaseDuration: 800, heartbeatInterval: 200,
    maxStalls: 1, maxRetries: 1, baseRetryInterval: 50,
  }
  // A supervisor restarting the worker every time the poison job kills it, as systemd
  // or Kubernetes would; bounded, so a poison job that loops fails the test.
  let worker
  let restarts = 0
  t.after(() => worker?.child.kill('SIGKILL'))
  for (;;) {
    worker = startWorker(config)
    await worker.ready
    if (restarts === 0) await producer.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ name: 'crashy', data: { i } })))
    const done = eventually(async () => (await jobs.findOne({ _id: oid(poison.id) })).status === 'failed', { within: 15000, what: 'poison failed' })
    const ended = await Promise.race([worker.exited.then(() => 'crashed'), done.then(() => 'failed')])
    if (ended === 'failed') break
    restarts++
    assert.ok(restarts <= 6, `the poison job keeps crashing its worker (${restarts} restarts)`)
  }
  const failed = await jobs.findOne({ _id: oid(poison.id) })
  // Run 1 stalls (back to pending); runs 2 and 3 stall past maxStalls: failures 1 and 2,
  // the second one past maxRetries.
  assert.equal(await db.collection('executions').countDocuments({ jobId: poison.id }), 3)
  assert.equal(restarts, 3)
  assert.equal(failed.stallCount, 3)
  assert.equal(failed.failCount, 2)
  assert.match(failed.failReason, /^stalled 3 times: its worker stopped renewing the lease/)
  assert.deepEqual(failed.attempts.map((a) => a.outcome), ['stalled', 'stalled'])
  const others = async () => (await jobs.find({ 'data.i': { $exists: true } }).toArray()).map((j) => `${j.status}/${j.stallCount ?? 0}`)
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 5, { within: 15000, what: `the other jobs (${await others()})` })
})

test('workers whose clocks are 10 minutes ahead and behind: every job runs once, on time, none is stuck', async (t) => {
  const { db, name: database, jobs } = await testDb(t)
  const config = { database, name: 'skewed', concurrency: 4, workMs: [100, 300], leaseDuration: 1000, heartbeatInterval: 200 }
  const TEN_MINUTES = 10 * 60_000
  // The skew shifts what each worker process believes is now (MONQUE_CLIENT_CLOCK_SKEW_MS).
  const ahead = startWorker(config, { MONQUE_CLIENT_CLOCK_SKEW_MS: String(TEN_MINUTES) })
  const behind = startWorker(config, { MONQUE_CLIENT_CLOCK_SKEW_MS: String(-TEN_MINUTES) })
  t.after(() => [ahead, behind].forEach((w) => w.child.kill('SIGKILL')))
  await Promise.all([ahead.ready, behind.ready])
  const producer = new Monque(uri, { database, logger: false })
  await producer.initialize()
  const enqueuedAt = Date.now()
  await producer.enqueueMany(Array.from({ length: 60 }, (_, i) => ({ name: 'skewed', data: { i } })))
  const later = await producer.enqueueMany(
    Array.from({ length: 5 }, (_, i) => ({ name: 'skewed', data: { later: i }, options: { runAt: enqueuedAt + 3000 } })),
  )
  assert.equal(later.inserted, 5)
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 65, { within: 30000, what: 'all 65 completed' })
  const byJob = await executionsByJob(db)
  assert.equal(byJob.size, 65)
  for (const runs of byJob.values()) assert.equal(runs.length, 1, 'each job ran exactly once: no live lease taken over')
  assertNoOverlap(byJob, new Date(0))
  const pids = new Set([...byJob.values()].map((runs) => runs[0].pid))
  assert.deepEqual(pids, new Set([ahead.child.pid, behind.child.pid]), 'the worker whose clock is behind is not stuck')
  const delayed = await jobs.find({ 'data.later': { $exists: true } }).toArray()
  for (const job of delayed) {
    const [run] = byJob.get(job._id.toHexString())
    const startedAfter = run.start.getTime() - enqueuedAt
    assert.ok(startedAfter >= 2900, `a delayed job ran ${startedAfter} ms after its enqueue, before it was due`)
    assert.ok(startedAfter < 8000, `a delayed job ran ${startedAfter} ms after its enqueue, long after it was due`)
  }
})

test('network faults between workers and the server: drops, latency, a blackhole longer than the lease, half-open connections', async (t) => {
  const { db, name: database, jobs } = await testDb(t)
  const proxy = await startProxy(Number(new URL(uri.replace('mongodb://', 'http://')).port))
  t.after(() => proxy.close())
  const viaProxy = `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`
  const LEASE_MS = 1500
  const config = {
    database, name: 'netfault', concurrency: 3, workMs: [800, 3000], leaseDuration: LEASE_MS, heartbeatInterval: 300,
    serverSelectionTimeout: 1000,
    // A job cut off twice counts a stall as a failure (maxStalls 1): retried soon here.
    baseRetryInterval: 100,
  }
  // Two workers behind the proxy, one straight to the server (it takes over what the
  // others lose while they are cut off).
  const cut = [startWorker({ ...config, uri: viaProxy }), startWorker({ ...config, uri: viaProxy })]
  const cutPidsAll = new Set(cut.map((w) => w.child.pid))
  const direct = startWorker(config)
  const workers = [...cut, direct]
  t.after(() => workers.forEach((w) => w.child.kill('SIGKILL')))
  await Promise.all(workers.map((w) => w.ready))
  await enqueue('netfault', database, 60)
  const completed = () => jobs.countDocuments({ status: 'completed' })
  const progressed = async (atLeast, what) => eventually(async () => (await completed()) >= atLeast, { within: 30000, what })
  const hold = (ms) => new Promise((r) => setTimeout(r, ms))

  await progressed(4, 'a first few done')
  proxy.dropAll() // every connection reset mid-run
  await progressed(10, 'progress after the reset')
  proxy.latency(200)
  await hold(3000)
  proxy.pass()
  await progressed(16, 'progress after the latency')
  proxy.blackhole() // longer than the lease: the direct worker takes over
  await hold(LEASE_MS * 2 + 1000)
  proxy.pass()
  proxy.dropAll() // the swallowed connections are dead: as a router would reset them
  await progressed(24, 'progress after the blackhole')
  proxy.halfOpen()
  await hold(LEASE_MS * 2)
  proxy.pass()
  proxy.dropAll()
  const healedAt = new Date()
  // New work after the last fault: the cut-off workers must take part by themselves.
  await enqueue('netfault', database, 20)
  const states = async () => JSON.stringify(await jobs.aggregate([{ $group: { _id: '$status', n: { $sum: 1 } } }]).toArray())
  await eventually(async () => (await completed()) === 80, { within: 60000, what: `all 80 completed (${await states()})` })
  assert.equal(await jobs.countDocuments(), 80, 'no job lost or duplicated')

  const byJob = await executionsByJob(db)
  assert.equal(byJob.size, 80)
  // A run cut off past its lease was told to stop by then (abortedAt: when its handler
  // learned it): no two runs of a job overlap.
  for (const runs of byJob.values()) for (const e of runs) if (e.abortedAt) e.end = e.abortedAt
  try {
    assertNoOverlap(byJob, null)
  } catch (err) {
    const id = /job (\w+)/.exec(err.message)?.[1]
    const pidRole = (pid) => (cutPidsAll.has(pid) ? 'cut' : 'direct')
    console.log(JSON.stringify(byJob.get(id).map((e) => ({ role: pidRole(e.pid), start: e.start, end: e.end, reason: e.reason }))), JSON.stringify(await jobs.findOne({ _id: new ObjectId(id) }), null, 0).slice(0, 600))
    throw err
  }
  const lost = [...byJob.values()].flat().filter((e) => e.reason === 'LEASE_LOST')
  const cutPids = new Set(cut.map((w) => w.child.pid))
  assert.ok(lost.length > 0, 'runs cut off past their lease saw LEASE_LOST')
  assert.ok(lost.every((e) => cutPids.has(e.pid)), 'only the cut-off workers lost leases')
  // The cut-off workers resumed by themselves: each ran jobs after the last fault.
  for (const w of cut) {
    const resumed = [...byJob.values()].flat().filter((e) => e.pid === w.child.pid && e.start > healedAt)
    assert.ok(resumed.length > 0, `worker ${w.child.pid} ran nothing after the faults`)
  }
  t.diagnostic(`runs: ${[...byJob.values()].flat().length} for 80 jobs; LEASE_LOST aborts: ${lost.length}`)
})

test('3 processes race for 500 jobs: each runs exactly once, no overlapping executions', async (t) => {
  const { db, name: database, jobs } = await testDb(t)
  const config = { database, name: 'race', concurrency: 8, workMs: [0, 20], leaseDuration: LEASE, heartbeatInterval: HEARTBEAT }
  const workers = [startWorker(config), startWorker(config), startWorker(config)]
  t.after(() => workers.forEach((w) => w.child.kill('SIGKILL')))
  // Enqueued once all three run: a slow process start could otherwise find the work done.
  await Promise.all(workers.map((w) => w.ready))
  await enqueue('race', database, 500)
  await eventually(async () => (await jobs.countDocuments({ status: 'completed' })) === 500, { within: 60000, what: 'all 500 completed' })
  const byJob = await executionsByJob(db)
  assert.equal(byJob.size, 500)
  const twice = [...byJob].filter(([, runs]) => runs.length !== 1)
  assert.deepEqual(twice, [], 'no job ran twice')
  const pids = new Set([...byJob.values()].map((runs) => runs[0].pid))
  assert.equal(pids.size, 3, 'every process took part')
})

test('SIGTERM with 20 jobs in flight and a 1 s shutdown timeout: exits in time, every job back to pending at once', async (t) => {
  const { name: database, jobs } = await testDb(t)
  await enqueue('term', database, 20)
  const config = {
    database,
    name: 'term',
    concurrency: 20,
    untilAborted: true,
    shutdownTimeout: 1000,
    leaseDuration: 30000,
    heartbeatInterval: 5000,
  }
  const worker = startWorker(config)
  t.after(() => worker.child.kill('SIGKILL'))
  await worker.ready
  await eventually(async () => (await jobs.countDocuments({ status: 'processing' })) === 20, { within: 10000, what: '20 running' })
  const stopped = worker.message('stopped')
  const t0 = Date.now()
  worker.child.kill('SIGTERM')
  const { code } = await worker.exited
  const took = Date.now() - t0
  assert.equal(code, 0)
  // The 1 s timeout, then the hand-back, the client's close and Node's exit (slow on a
  // loaded machine): far below the 30 s lease and the handlers' 60 s.
  assert.ok(took < 1000 + 4000, `exited ${took} ms after SIGTERM`)
  assert.equal((await stopped).handedBack, 20)
  // At once: the 30 s lease has not expired, the shutdown handed them back itself.
  assert.equal(await jobs.countDocuments({ status: 'pending', claimId: { $exists: false } }), 20)
  t.diagnostic(`exited ${took} ms after SIGTERM (shutdown timeout 1000 ms)`)
})

test('misbehaving handlers leave the system healthy: non-Error throws, a synchronous throw, a rejection after the lease was taken over', async (t) => {
  const { jobs, name: database } = await testDb(t)
  const monque = new Monque(uri, { pollInterval: 50, leaseDuration: 1500, heartbeatInterval: 300, database, maxRetries: 0, logger: false })
  const errors = []
  monque.on('job:error', (e) => errors.push(e))
  monque.register('throws-string', async () => {
    throw 'plain string'
  })
  monque.register('throws-object', async () => {
    throw { reason: 'an object' }
  })
  monque.register('throws-undefined', async () => {
    throw undefined
  })
  monque.register('throws-sync', () => {
    throw new Error('thrown synchronously')
  })
  let release
  const gate = new Promise((r) => (release = r))
  let started
  const running = new Promise((r) => (started = r))
  monque.register('late', async () => {
    started()
    await gate
    throw new Error('rejected too late')
  })
  monque.register('healthy', async () => {})
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop({ timeout: 200 }))

  const expected = {
    'throws-string': 'plain string',
    'throws-object': 'thrown non-Error value: {"reason":"an object"}',
    'throws-undefined': 'thrown non-Error value: undefined',
    'throws-sync': 'thrown synchronously',
  }
  const ids = {}
  for (const name of Object.keys(expected)) ids[name] = (await monque.now(name, {})).id
  for (const [name, reason] of Object.entries(expected)) {
    await eventually(async () => (await jobs.findOne({ _id: oid(ids[name]) })).status === 'failed', { what: `${name} failed` })
    assert.equal((await jobs.findOne({ _id: oid(ids[name]) })).failReason, reason)
  }

  // Another instance took the lease over (as after an expiry); the old run then rejects.
  const late = await monque.now('late', {})
  await running
  const thief = new ObjectId()
  await jobs.updateOne({ _id: oid(late.id) }, { $set: { claimId: thief, claimedBy: 'thief', leaseExpiresAt: new Date(Date.now() + 600000) } })
  release()
  await eventually(() => errors.some((e) => e.error.code === 'LEASE_LOST' && e.job?.id === late.id), { what: 'LEASE_LOST reported' })
  const stolen = await jobs.findOne({ _id: oid(late.id) })
  assert.equal(stolen.status, 'processing', 'the late rejection was not written')
  assert.deepEqual(stolen.claimId, thief)

  const ok = await monque.now('healthy', {})
  await eventually(async () => (await jobs.findOne({ _id: oid(ok.id) })).status === 'completed', { what: 'a healthy job still completes' })
})

test('20,000 jobs through one worker in batches of 1,000: RSS ends within 20 % of RSS after the first 1,000', async (t) => {
  const { name: database } = await testDb(t)
  const batches = Number(process.env.MONQUE_MEMORY_BATCHES ?? 20)
  const child = fork(new URL('./reliability/memory.mjs', import.meta.url), [JSON.stringify({ database, batches })], {
    // A fixed 1 MB young generation: by default V8 grows it with the allocation rate
    // (RSS rises by ~25 MB over the first ~8,000 jobs, then stays flat through 40,000),
    // which would hide or fake a leak. Fixed, RSS measures what is retained.
    execArgv: ['--expose-gc', '--max-semi-space-size=1'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  t.after(() => child.kill('SIGKILL'))
  const result = await new Promise((resolve, reject) => {
    child.on('message', (m) => m.type === 'result' && resolve(m))
    child.on('exit', (code) => reject(new Error(`memory check exited (${code}) without a result`)))
  })
  assert.equal(result.done, batches * 1000)
  const growth = result.afterAll / result.afterFirst - 1
  const mb = (bytes) => (bytes / 1024 / 1024).toFixed(1)
  t.diagnostic(`${result.done} jobs: RSS ${mb(result.afterFirst)} MB after the first 1,000, ${mb(result.afterAll)} MB at the end (${(growth * 100).toFixed(1)} %)`)
  assert.ok(growth <= 0.2, `RSS grew ${(growth * 100).toFixed(1)} %`)
})

// A full garbage collection on demand (the test below): the flag is set at run time.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

test('a handler that never resolves, not even kept by a reference: its timeout aborts job.signal, reports JOB_TIMEOUT and fails the run; the worker goes on', async (t) => {
  const { jobs, name: database } = await testDb(t)
  const monque = new Monque(uri, { pollInterval: 50, leaseDuration: 1500, heartbeatInterval: 300, database, maxRetries: 0, logger: false })
  const reasons = []
  const errors = []
  monque.on('job:error', (e) => errors.push(e.error.code))
  monque.register(
    'hang',
    (job) => {
      if (job.data.quick) return undefined
      job.signal.addEventListener('abort', () => reasons.push(job.signal.reason.code))
      return new Promise(() => {})
    },
    { timeout: 1000, concurrency: 1 },
  )
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop({ timeout: 200 }))
  const hung = await monque.now('hang', {})
  // Nothing but the run references the handler's promise: a garbage collection while
  // it hangs must not end the run early (it is the timeout's to end).
  await eventually(async () => (await jobs.findOne({ _id: oid(hung.id) })).status === 'processing', { what: 'the hung run started' })
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((r) => setTimeout(r, 10))
  }
  await eventually(async () => (await jobs.findOne({ _id: oid(hung.id) })).status === 'failed', { what: 'the hung run failed' })
  assert.equal((await jobs.findOne({ _id: oid(hung.id) })).failReason, 'timed out after 1000 ms')
  await eventually(() => reasons.length === 1, { what: 'job.signal aborted' })
  assert.deepEqual(reasons, ['JOB_TIMEOUT'])
  assert.ok(errors.includes('JOB_TIMEOUT'))
  // Its only slot is free again although the first run never settles.
  const ok = await monque.now('hang', { quick: true })
  await eventually(async () => (await jobs.findOne({ _id: oid(ok.id) })).status === 'completed', { what: 'the worker goes on' })
})

test('a job cancelled from one process stops running in another within one heartbeat', async (t) => {
  const { db, name: database } = await testDb(t)
  const heartbeatInterval = 1000
  // Change streams off: the heartbeat is the only way the worker can learn of the cancel.
  const worker = startWorker({ name: 'long', database, concurrency: 2, leaseDuration: 20_000, heartbeatInterval, untilAborted: true, changeStreams: false, shutdownTimeout: 1000 })
  await worker.ready
  const admin = new Monque(uri, { database, logger: false })
  const [cancelled, other] = [await admin.enqueue('long', { n: 1 }), await admin.enqueue('long', { n: 2 })]
  const executions = db.collection('executions')
  await eventually(async () => (await executions.countDocuments()) === 2, { what: 'both jobs running in the worker process' })

  const job = await admin.cancelJob(cancelled.id)
  const cancelledAt = Date.now()
  assert.equal(job.status, 'cancelled')
  await eventually(async () => (await executions.findOne({ jobId: cancelled.id }))?.abortedAt, { what: 'the run to abort' })
  const run = await executions.findOne({ jobId: cancelled.id })
  assert.equal(run.reason, 'JOB_CANCELLED')
  const took = run.abortedAt.getTime() - cancelledAt
  // A heartbeat and its round trips, far below the 20 s lease, the only other way.
  assert.ok(took <= heartbeatInterval + 1500, `aborted ${took} ms after the cancel (heartbeat ${heartbeatInterval} ms)`)

  // The handler returned after the abort: nothing of that run was written.
  await new Promise((r) => setTimeout(r, 300))
  const stored = await admin.getJob(cancelled.id)
  assert.equal(stored.status, 'cancelled')
  assert.equal(stored.completedAt, undefined)
  assert.equal((await admin.getJob(other.id)).status, 'processing', 'the other job runs on')
  assert.equal((await executions.findOne({ jobId: other.id })).abortedAt, undefined)

  worker.child.kill('SIGTERM')
  await worker.exited
})

test('a rate limit is respected in aggregate by two processes over 20 s', async (t) => {
  const { db, name: database } = await testDb(t)
  const limiter = { max: 10, duration: 1000 }
  const config = { name: 'limited', database, concurrency: 5, leaseDuration: LEASE, heartbeatInterval: HEARTBEAT, workMs: [1, 5], limiter, shutdownTimeout: 1000 }
  const workers = [startWorker(config), startWorker(config)]
  await Promise.all(workers.map((w) => w.ready))
  await enqueue('limited', database, 400)
  const executions = db.collection('executions')
  const span = 20_000
  await eventually(async () => {
    const first = await executions.find().sort({ start: 1 }).limit(1).next()
    return first && Date.now() - first.start.getTime() > span + 500
  }, { within: span + 10_000, what: '20 s of starts' })
  for (const w of workers) w.child.kill('SIGTERM')
  await Promise.all(workers.map((w) => w.exited))

  const starts = (await executions.find().sort({ start: 1 }).toArray()).map((e) => ({ at: e.start.getTime(), pid: e.pid }))
  const first = starts[0].at
  const within = starts.filter((s) => s.at - first < span)
  const expected = (span / limiter.duration) * limiter.max
  assert.ok(Math.abs(within.length - expected) <= expected * 0.1, `${within.length} starts in 20 s, expected ${expected} ± 10%`)
  assert.equal(new Set(within.map((s) => s.pid)).size, 2, 'both processes started jobs')
  t.diagnostic(`${within.length} starts in 20 s across 2 processes (limit ${limiter.max} per ${limiter.duration} ms)`)
})
