// The soak (not part of `npm test`): 4 worker processes and `--jobs` jobs (default
// 40,000), fed in batches so the backlog stays under 1,000; every few seconds one of
// three of the workers, at random, is killed with SIGKILL and restarted; the fourth is
// never killed, to watch its RSS. Checks every job completed, none lost or duplicated, no two runs of a job
// overlapped; prints the figures the README's Reliability section quotes.
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
let nextKill = Date.now() + 3000
while (true) {
  // Count the few unfinished jobs, not the many finished ones: on the test server a
  // query's cost grows with what it matches.
  const unfinished = await jobs.countDocuments({ status: { $in: ['pending', 'processing'] } })
  const done = enqueued - unfinished
  if (done >= TOTAL) break
  const pending = unfinished
  if (enqueued < TOTAL && pending < 500) {
    const n = Math.min(1000 - pending, TOTAL - enqueued)
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
  if (Date.now() - t0 > 20 * 60_000) throw new Error(`soak stalled at ${done} of ${TOTAL}`)
  await sleep(500)
}
const seconds = (Date.now() - t0) / 1000
for (const w of [steady, ...killable]) w.child.kill('SIGKILL')

assert.equal(await jobs.countDocuments(), TOTAL, 'no job lost or duplicated')
assert.equal(await jobs.countDocuments({ status: 'completed' }), TOTAL)
const runs = new Map()
for await (const e of db.collection('executions').find().sort({ start: 1 })) {
  if (!runs.has(e.jobId)) runs.set(e.jobId, [])
  runs.get(e.jobId).push(e)
}
assert.equal(runs.size, TOTAL, 'every job ran')
let reruns = 0
for (const [id, list] of runs) {
  for (let i = 1; i < list.length; i++) {
    reruns++
    // A run cut by a kill has no end: its process died at the kill, before any rerun.
    if (list[i - 1].end) assert.ok(list[i].start >= list[i - 1].end, `job ${id}: runs overlap`)
  }
}
const mb = (b) => (b / 1048576).toFixed(1)
const early = steady.rss.slice(5, 15)
const late = steady.rss.slice(-10)
const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
console.log(
  `soak: ${TOTAL} jobs in ${seconds.toFixed(0)} s (${(TOTAL / seconds).toFixed(0)} jobs/s), 4 workers, ${kills} kill -9 and restarts; ` +
    `every job completed once, none lost or duplicated; ${reruns} re-runs of jobs cut by a kill, no overlap; ` +
    `RSS of the worker never killed: ${mb(avg(early))} MB early, ${mb(avg(late))} MB at the end`,
)
await db.dropDatabase()
await client.close()
process.exit(0)
