// The soak (not part of `npm test`): 4 worker processes and `--jobs` jobs (default
// 40,000), fed in batches so the backlog stays under 1,000; every few seconds one of
// three of the workers, at random, is killed with SIGKILL and restarted; the fourth is
// never killed, to watch its RSS. Checks, as it goes, that every job completed once,
// none was lost or left behind, no two runs of a job overlapped and no run started
// after its job completed; prints the figures the README's Reliability section quotes.
//
//   MONGODB_URI=… node scripts/soak.mjs [--jobs 40000]   (npm run soak starts the server)
import { fork } from 'node:child_process'
import assert from 'node:assert/strict'
import { MongoClient, ObjectId } from 'mongodb'
import { Monque } from '../dist/index.mjs'

const uri = process.env.MONGODB_URI
if (!uri) throw new Error('MONGODB_URI is not set (npm run soak starts the embedded server)')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const TOTAL = arg('jobs', 40_000)
const WORKER = new URL('../__test__/reliability/worker.mjs', import.meta.url)
const database = `soak_${new ObjectId().toHexString()}`
const config = { database, name: 'soak', concurrency: 10, workMs: [5, 30], leaseDuration: 3000, heartbeatInterval: 500, baseRetryInterval: 100, maxStalls: 3, reportRss: true }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function start() {
  const child = fork(WORKER, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const rss = []
  child.on('message', (m) => m.type === 'rss' && rss.push(m.rss))
  const ready = new Promise((resolve) => child.on('message', (m) => m.type === 'ready' && resolve()))
  return { child, rss, ready }
}

const client = await MongoClient.connect(uri)
const db = client.db(database)
const jobs = db.collection('monque_jobs')
const producer = new Monque(uri, { database, logger: false })
await producer.initialize()

const steady = start()
const killable = [start(), start(), start()]
await Promise.all([steady.ready, ...killable.map((w) => w.ready)])
const t0 = Date.now()
let enqueued = 0
let kills = 0
let reruns = 0
let nextKill = Date.now() + 3000
const verified = new Set()

/**
 * Checks the jobs completed so far, a chunk at a time, then removes them and their
 * execution records, as retention would: the collections stay the size of a busy
 * production queue's, not of everything ever run (on the test server a query's cost
 * grows with the documents it passes). Each job: its runs never overlapped, and it is
 * verified once.
 */
async function harvest() {
  for (;;) {
    const done = await jobs.find({ status: 'completed' }, { projection: { _id: 1 } }).limit(1000).toArray()
    if (done.length === 0) return
    const ids = done.map((d) => d._id)
    const hex = ids.map((id) => id.toHexString())
    const runs = new Map()
    for await (const e of db.collection('executions').find({ jobId: { $in: hex } }).sort({ start: 1 })) {
      if (!runs.has(e.jobId)) runs.set(e.jobId, [])
      runs.get(e.jobId).push(e)
    }
    for (const id of hex) {
      assert.ok(!verified.has(id), `job ${id} completed twice`)
      verified.add(id)
      const list = runs.get(id) ?? []
      assert.ok(list.length > 0, `job ${id} completed without running`)
      for (let i = 1; i < list.length; i++) {
        reruns++
        // A run cut by a kill has no end: its process died at the kill, before any rerun.
        if (list[i - 1].end) assert.ok(list[i].start >= list[i - 1].end, `job ${id}: runs overlap`)
      }
    }
    await jobs.deleteMany({ _id: { $in: ids }, status: 'completed' })
    await db.collection('executions').deleteMany({ jobId: { $in: hex } })
  }
}

while (true) {
  // Count the few unfinished jobs, not the many finished ones: on the test server a
  // query's cost grows with what it matches.
  const unfinished = await jobs.countDocuments({ status: { $in: ['pending', 'processing'] } })
  if (enqueued === TOTAL && unfinished === 0) break
  if (enqueued < TOTAL && unfinished < 500) {
    const n = Math.min(1000 - unfinished, TOTAL - enqueued)
    await producer.enqueueMany(Array.from({ length: n }, (_, i) => ({ name: 'soak', data: { i: enqueued + i } })))
    enqueued += n
  }
  if (Date.now() >= nextKill) {
    const i = Math.floor(Math.random() * killable.length)
    killable[i].child.kill('SIGKILL')
    killable[i] = start()
    await killable[i].ready
    kills++
    nextKill = Date.now() + 2000 + Math.random() * 3000
  }
  await harvest()
  if (Date.now() - t0 > 60 * 60_000) throw new Error(`soak stalled at ${verified.size} of ${TOTAL}`)
  await sleep(500)
}
await harvest()
const seconds = (Date.now() - t0) / 1000
for (const w of [steady, ...killable]) w.child.kill('SIGKILL')

assert.equal(verified.size, TOTAL, 'every job completed once')
assert.equal(await jobs.countDocuments(), 0, 'no job left in another state (failed, lost)')
// A run that started after its job completed (a double run) would have left a record.
assert.equal(await db.collection('executions').countDocuments(), 0, 'no run after completion')
const mb = (b) => (b / 1048576).toFixed(1)
// RSS of the never-killed worker, averaged over 10 s around each point of the run: flat
// once V8's heap has grown to the allocation rate, or growing (a leak).
const rss = steady.rss
const around = (f) => {
  const at = Math.min(rss.length - 5, Math.max(5, Math.round(f * rss.length)))
  const window = rss.slice(at - 5, at + 5)
  return mb(window.reduce((a, b) => a + b, 0) / window.length)
}
console.log(
  `soak: ${TOTAL} jobs in ${seconds.toFixed(0)} s (${(TOTAL / seconds).toFixed(0)} jobs/s), 4 workers, ${kills} kill -9 and restarts; ` +
    `every job completed once, none lost or duplicated; ${reruns} re-runs of jobs cut by a kill, no overlap; ` +
    `RSS (MB) of the worker never killed at 0 / 10 / 25 / 50 / 75 / 100 % of the run: ${[0, 0.1, 0.25, 0.5, 0.75, 1].map(around).join(' / ')}`,
)
await db.dropDatabase()
await client.close()
process.exit(0)
