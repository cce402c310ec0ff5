// Groups against the real server, with real worker processes: fair turns across groups,
// groupConcurrency across processes, pausing one group, and slot counts after kill -9.
// Every execution is recorded (job, group, start, end, pid) by the worker's handler.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'

import { Monque } from '../dist/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

const WORKER = new URL('./reliability/worker.mjs', import.meta.url)
const LEASE = 2000
const HEARTBEAT = 400

function startWorker(config) {
  const child = fork(WORKER, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => m.type === 'ready' && resolve())
    exited.then(() => reject(new Error('worker exited before it was ready')))
  })
  return { child, ready, exited }
}

async function stopAll(workers) {
  for (const w of workers) w.child.kill('SIGTERM')
  await Promise.all(workers.map((w) => w.exited))
}

async function producer(database, t) {
  const monque = new Monque(uri, { database, logger: false })
  await monque.initialize()
  t.after(() => monque.stop())
  return monque
}

/** The most executions of one group that ever ran at once, per group. */
function peakOverlap(executions) {
  const events = []
  for (const e of executions) {
    events.push({ at: e.start.getTime(), group: e.group, d: 1 })
    events.push({ at: (e.end ?? e.abortedAt ?? new Date(8.64e15)).getTime(), group: e.group, d: -1 })
  }
  // Ends before starts at the same ms: a slot given back is free for the next start.
  events.sort((a, b) => a.at - b.at || a.d - b.d)
  const now = new Map()
  const peak = new Map()
  for (const e of events) {
    const n = (now.get(e.group) ?? 0) + e.d
    now.set(e.group, n)
    peak.set(e.group, Math.max(peak.get(e.group) ?? 0, n))
  }
  return peak
}

test('fairness: with one group holding 90% of the backlog, every group starts within the first round', async (t) => {
  const { db, name: database } = await testDb(t)
  const monque = await producer(database, t)
  // The big group's 90 jobs are written first, so a FIFO queue would run all of them first.
  const big = Array.from({ length: 90 }, (_, i) => ({ name: 'sync', data: { i }, options: { group: 'big' } }))
  await monque.enqueueMany(big)
  const small = Array.from({ length: 9 }, (_, g) => ({ name: 'sync', data: { g }, options: { group: `small-${g}` } }))
  await monque.enqueueMany([...small, ...small])
  const worker = startWorker({ name: 'sync', database, concurrency: 5, workMs: [5, 15], leaseDuration: LEASE, heartbeatInterval: HEARTBEAT })
  t.after(() => stopAll([worker]))
  await worker.ready
  const executions = db.collection('executions')
  await eventually(async () => (await executions.countDocuments({ end: { $exists: true } })) === 108, { within: 30_000, what: 'all 108 jobs' })
  const order = (await executions.find().sort({ start: 1 }).toArray()).map((e) => e.group)
  const firstRound = new Set(order.slice(0, 10))
  assert.equal(firstRound.size, 10, `the first 10 starts cover all 10 groups, got ${order.slice(0, 10).join(', ')}`)
  // The big group gets its turn and no more while others have work: of the first 20
  // starts (every small group has 2 jobs), at most 2 + a round's slack are big's.
  const bigEarly = order.slice(0, 20).filter((g) => g === 'big').length
  assert.ok(bigEarly <= 4, `big took ${bigEarly} of the first 20 starts`)
  // Every job ran exactly once.
  assert.equal(order.length, 108)
  // Executions are recorded as each handler ends; the completions land just after.
  await eventually(async () => (await monque.getQueueStats({ name: 'sync' })).completed === 108, { what: 'all 108 completed' })
  const groups = await monque.getGroups('sync')
  assert.equal(groups.length, 10)
  for (const g of groups) {
    assert.equal(g.counts.pending, 0, g.group)
    assert.equal(g.counts.completed, g.group === 'big' ? 90 : 2, g.group)
    assert.equal(g.oldestDue, undefined)
  }
})

test('groupConcurrency holds across 3 processes: never more than 2 of a group at once, every job once', async (t) => {
  const { db, name: database } = await testDb(t)
  const monque = await producer(database, t)
  const jobs = []
  for (const group of ['a', 'b', 'c']) for (let i = 0; i < 12; i++) jobs.push({ name: 'capped', data: { i }, options: { group } })
  // Ungrouped jobs of the same name run beside the groups, uncapped.
  for (let i = 0; i < 6; i++) jobs.push({ name: 'capped', data: { i } })
  const config = { name: 'capped', database, concurrency: 4, groupConcurrency: 2, workMs: [20, 60], leaseDuration: LEASE, heartbeatInterval: HEARTBEAT }
  const workers = [startWorker(config), startWorker(config), startWorker(config)]
  t.after(() => stopAll(workers))
  // Enqueued once all three run: a slow process start could otherwise find the work done.
  await Promise.all(workers.map((w) => w.ready))
  await monque.enqueueMany(jobs)
  const executions = db.collection('executions')
  await eventually(async () => (await executions.countDocuments({ end: { $exists: true } })) === 42, { within: 60_000, what: 'all 42 jobs' })
  const all = await executions.find().toArray()
  assert.equal(all.length, 42, 'every job ran exactly once')
  assert.equal(new Set(all.map((e) => e.jobId)).size, 42)
  const peak = peakOverlap(all.filter((e) => e.group))
  for (const group of ['a', 'b', 'c']) {
    assert.ok(peak.get(group) <= 2, `group ${group} had ${peak.get(group)} running at once`)
    assert.equal(peak.get(group), 2, `group ${group} used its 2 slots`)
  }
  assert.ok(new Set(all.map((e) => e.pid)).size >= 2, 'the work spread over processes')
  // A run's slot goes back right after its end is written.
  await eventually(async () => (await monque.getGroups('capped')).every((g) => g.running === 0), { what: 'every slot back' })
})

test('pauseGroup holds one group back while the others run; resumeGroup drains it', async (t) => {
  const { db, name: database } = await testDb(t)
  const monque = new Monque(uri, { database, logger: false, ...fast })
  t.after(() => monque.stop())
  const ran = []
  monque.register('mail', async (job) => {
    ran.push(job.group)
  })
  await monque.initialize()
  await monque.pauseGroup('mail', 'tenant-b')
  const jobs = []
  for (const group of ['tenant-a', 'tenant-b', 'tenant-c']) for (let i = 0; i < 5; i++) jobs.push({ name: 'mail', data: { i }, options: { group } })
  await monque.enqueueMany(jobs)
  monque.start()
  await eventually(async () => ran.length === 10, { what: 'the unpaused groups' })
  await new Promise((r) => setTimeout(r, 300)) // a few more polls: b must still wait
  assert.deepEqual(new Set(ran), new Set(['tenant-a', 'tenant-c']))
  const b = (await monque.getGroups('mail')).find((g) => g.group === 'tenant-b')
  assert.equal(b.paused, true)
  assert.equal(b.counts.pending, 5)
  assert.ok(b.oldestDue instanceof Date)
  assert.equal((await monque.getQueueStats({ name: 'mail', group: 'tenant-b' })).pending, 5)
  const metrics = await monque.metrics()
  assert.match(metrics, /monque_groups_paused\{name="mail"\} 1/)
  await monque.resumeGroup('mail', 'tenant-b')
  await eventually(async () => ran.length === 15, { what: 'tenant-b after resume' })
  // `ran` is written as each run starts; its completion lands just after.
  await eventually(async () => (await monque.getQueueStats({ name: 'mail', group: 'tenant-b' })).completed === 5, { what: "tenant-b's 5 completed" })
})

test('kill -9 mid-run: recovery gives the dead runs\' group slots back and the group runs up to its cap again', async (t) => {
  const { db, name: database } = await testDb(t)
  const monque = await producer(database, t)
  const jobs = Array.from({ length: 8 }, (_, i) => ({ name: 'crashy', data: { i }, options: { group: 'g' } }))
  await monque.enqueueMany(jobs)
  const config = { name: 'crashy', database, concurrency: 4, groupConcurrency: 2, workMs: [400, 600], leaseDuration: LEASE, heartbeatInterval: HEARTBEAT }
  // Its runs last until it dies: exactly the 2 slot holders are cut off.
  const doomed = startWorker({ ...config, untilAborted: true })
  await doomed.ready
  const executions = db.collection('executions')
  await eventually(async () => (await executions.countDocuments({ end: { $exists: false } })) === 2, { what: 'two runs holding the slots' })
  const groupDoc = () => db.collection('monque_jobs_groups').findOne({ name: 'crashy', group: 'g' })
  assert.equal((await groupDoc()).running, 2)
  doomed.child.kill('SIGKILL')
  await doomed.exited
  const survivor = startWorker(config)
  t.after(() => stopAll([survivor]))
  await survivor.ready
  await eventually(async () => (await executions.countDocuments({ end: { $exists: true } })) === 8, { within: 30_000, what: 'all 8 jobs after the kill' })
  const all = await executions.find().toArray()
  assert.equal(all.length, 10, '8 jobs, 2 of them run again after the kill')
  // The killed runs never ended; the rest ran on the survivor.
  const peak = peakOverlap(all.filter((e) => e.end))
  assert.ok(peak.get('g') <= 2, `at most 2 at once after recovery, saw ${peak.get('g')}`)
  assert.equal(peak.get('g'), 2, 'the survivor ran the group up to its cap')
  await eventually(async () => (await groupDoc()).running === 0, { what: 'every slot back' })
  await eventually(async () => (await db.collection('monque_jobs').countDocuments({ status: 'completed' })) === 8, { what: 'all 8 completed' })
})

test('groupLimiter: each group gets its own window, shared by every process; one group waiting does not hold the others', async (t) => {
  const { db, name: database } = await testDb(t)
  const monque = await producer(database, t)
  const jobs = []
  for (const group of ['a', 'b']) for (let i = 0; i < 6; i++) jobs.push({ name: 'limited', data: { i }, options: { group } })
  await monque.enqueueMany(jobs)
  const config = { name: 'limited', database, concurrency: 5, groupLimiter: { max: 2, duration: 500 }, workMs: [1, 5], leaseDuration: LEASE, heartbeatInterval: HEARTBEAT }
  const workers = [startWorker(config), startWorker(config)]
  t.after(() => stopAll(workers))
  await Promise.all(workers.map((w) => w.ready))
  const executions = db.collection('executions')
  await eventually(async () => (await executions.countDocuments({ end: { $exists: true } })) === 12, { within: 20_000, what: 'all 12 jobs' })
  const starts = (group) => executions.find({ group }).sort({ start: 1 }).toArray().then((all) => all.map((e) => e.start.getTime()))
  const [a, b] = [await starts('a'), await starts('b')]
  for (const [group, s] of [['a', a], ['b', b]]) {
    // 6 starts at 2 per 500 ms window need 3 windows: the last starts at least 2 window
    // lengths after the first (less a little for the windows' alignment).
    assert.ok(s.at(-1) - s[0] >= 900, `group ${group}: 6 starts within ${s.at(-1) - s[0]} ms`)
    // Less than a window's time meets at most 2 windows, so at most 4 starts (the margin
    // covers the handler's clock against the server's).
    for (let i = 4; i < s.length; i++) assert.ok(s[i] - s[i - 4] >= 400, `group ${group}: 5 starts within ${s[i] - s[i - 4]} ms`)
  }
  // Both groups ran side by side, each in its own windows.
  assert.ok(b[0] < a[2] && a[0] < b[2], 'one group waiting for its window did not hold the other back')
  const keys = (await db.collection('monque_jobs_rate_limits').find().toArray()).map((d) => d._id).sort()
  assert.deepEqual(keys, ['limited\u0000a', 'limited\u0000b'])
})

test('bad group input is a typed error and writes nothing', async (t) => {
  const { db, name: database, jobs } = await testDb(t)
  const monque = new Monque(uri, { database, logger: false })
  t.after(() => monque.stop())
  await monque.initialize()
  for (const group of ['', 'x'.repeat(257), 'a\nb']) {
    await assert.rejects(monque.enqueue('sync', {}, { group }), (e) => e.code === 'INVALID_OPTION' && /group/.test(e.message))
  }
  await assert.rejects(monque.enqueue('sync', {}, { group: 42 }), (e) => e.code === 'INVALID_OPTION')
  assert.throws(() => monque.register('sync', async () => {}, { groupConcurrency: 0 }), (e) => e.code === 'INVALID_OPTION')
  assert.throws(() => monque.register('sync', async () => {}, { groupLimiter: { max: 0, duration: 10 } }), (e) => e.code === 'INVALID_OPTION')
  await assert.rejects(monque.getQueueStats({ group: 'a' }), (e) => e.code === 'INVALID_OPTION')
  await assert.rejects(monque.pauseGroup('sync', ''), (e) => e.code === 'INVALID_OPTION')
  assert.equal(await jobs.countDocuments(), 0)
  assert.equal(await db.collection('monque_jobs_groups').countDocuments(), 0)
})

test('one tenant\'s jobs: listed, paged, cancelled and retried by group; a bad group touches nothing', async (t) => {
  const { db, name: database } = await testDb(t)
  const monque = await producer(database, t)
  await monque.enqueueMany([
    ...Array.from({ length: 3 }, (_, i) => ({ name: 'sync', data: { i }, options: { group: 'acme' } })),
    ...Array.from({ length: 2 }, (_, i) => ({ name: 'sync', data: { i }, options: { group: 'globex' } })),
    { name: 'report', data: {}, options: { group: 'acme' } },
    { name: 'sync', data: {} },
  ])
  const acme = await monque.getJobs({ group: 'acme' })
  assert.deepEqual(acme.map((j) => [j.name, j.group]).sort(), [['report', 'acme'], ['sync', 'acme'], ['sync', 'acme'], ['sync', 'acme']])
  const page = await monque.getJobsWithCursor({ filter: { name: 'sync', group: 'acme' }, limit: 2 })
  assert.equal(page.jobs.length, 2)
  assert.equal(page.hasNext, true)
  const rest = await monque.getJobsWithCursor({ filter: { name: 'sync', group: 'acme' }, limit: 2, cursor: page.nextCursor })
  assert.deepEqual(rest.jobs.map((j) => j.group), ['acme'])

  assert.equal(await monque.cancelJobs({ name: 'sync', group: 'acme' }), 3)
  const stats = (group) => monque.getQueueStats({ name: 'sync', group })
  assert.deepEqual([(await stats('acme')).cancelled, (await stats('globex')).pending], [3, 2])
  assert.equal((await monque.getJobs({ name: 'report' }))[0].status, 'pending', 'another name\'s acme job stays')
  // Both groups settled (as a claim that found them empty would leave them): the retry
  // makes acme due again, and only acme.
  const groups = db.collection('monque_jobs_groups')
  await groups.updateMany({}, { $unset: { due: '' } })
  assert.equal(await monque.retryJobs({ name: 'sync', group: 'acme' }), 3)
  assert.equal((await stats('acme')).pending, 3)
  const due = async (group) => groups.countDocuments({ name: 'sync', group, due: { $exists: true } })
  assert.deepEqual([await due('acme'), await due('globex')], [1, 0])

  for (const group of ['', 'x'.repeat(257), 7]) {
    await assert.rejects(monque.cancelJobs({ group }), (e) => e.code === 'INVALID_OPTION', `group ${JSON.stringify(group)}`)
    await assert.rejects(monque.getJobs({ group }), (e) => e.code === 'INVALID_OPTION')
  }
  await assert.rejects(monque.getJobs({ groups: 'acme' }), (e) => e.code === 'INVALID_OPTION' || e.code === 'INVALID_SELECTOR')
  assert.deepEqual([(await stats('acme')).pending, (await stats('globex')).pending], [3, 2], 'nothing changed')
})
