// What groups cost and what they buy (issue 22). One worker process at concurrency 10
// takes the first `--window` jobs of a 10,000-job backlog laid out as:
//   none        10,000 jobs without a group (today's claim, the baseline)
//   1×10000     one group of 10,000
//   100×100     100 groups of 100
//   100×100 c2  the same with groupConcurrency 2 (slots reserved and given back)
// and, for fairness, one big tenant with 9,000 jobs written first and 99 tenants with
// 10 each, enqueued with groups (`fair`) and as plain jobs carrying the tenant in their
// data (`fifo`): how long until every tenant's first job started.
// Scenarios alternate within each run. Throughput, worker CPU, and the server's CPU over
// the same time when it runs on this machine (scripts/test-server.sh).
//
// The worker talks to the server through a relay that counts its commands
// (wire-counter.mjs): round trips per job, by command.
//
//   MONGODB_URI=… node bench/groups.mjs [--runs 3] [--window 2000] [--out bench/groups.json]
//                                       [--only none,1×10000]
import { fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { MongoClient, ObjectId } from 'mongodb'
import { Monque } from '../dist/index.mjs'
import { serverCpuSeconds } from './server-cpu.mjs'
import { startWireCounter } from './wire-counter.mjs'
import { median } from './stats.mjs'

const uri = process.env.MONGODB_URI
if (!uri) throw new Error('MONGODB_URI is not set')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : fallback
}
const runs = Number(arg('runs', 3))
const WINDOW = Number(arg('window', 2000))
const out = arg('out', new URL('./groups.json', import.meta.url).pathname)
const CONCURRENCY = 10
const STALL_MS = 120_000
const wallMs = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const pad = (n) => String(n).padStart(3, '0')
/** The jobs of a layout, in the order they are written. */
const layouts = {
  none: () => Array.from({ length: 10_000 }, (_, i) => ({ data: { i } })),
  '1×10000': () => Array.from({ length: 10_000 }, (_, i) => ({ data: { i }, group: 'g000' })),
  '100×100': () => Array.from({ length: 10_000 }, (_, i) => ({ data: { i }, group: `g${pad(i % 100)}` })),
  '100×100 c2': () => layouts['100×100'](),
  fair: () => tenants().map(({ tenant, i }) => ({ data: { i }, group: tenant })),
  fifo: () => tenants().map(({ tenant, i }) => ({ data: { i, tenant } })),
}
function tenants() {
  const jobs = Array.from({ length: 9_000 }, (_, i) => ({ tenant: 'big', i }))
  for (let t = 0; t < 99; t++) for (let i = 0; i < 10; i++) jobs.push({ tenant: `t${pad(t)}`, i })
  return jobs
}
const scenarios = arg('only', Object.keys(layouts).join(',')).split(',')
for (const s of scenarios) if (!layouts[s]) throw new Error(`unknown scenario ${s}`)
const wire = await startWireCounter(uri)

async function fill(database, jobs) {
  const producer = new Monque(uri, { database, logger: false })
  await producer.initialize()
  for (let i = 0; i < jobs.length; i += 1000) {
    const batch = jobs.slice(i, i + 1000).map(({ data, group }) => ({ name: 'noop', data, options: group ? { group } : {} }))
    await producer.enqueueMany(batch)
  }
  await producer.stop()
}

function spawnWorker(opts) {
  const child = fork(new URL('./groups-child.mjs', import.meta.url), [JSON.stringify(opts)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const progress = { handled: 0, at: Date.now() }
  const waiting = new Map()
  child.on('message', (msg) => {
    if (msg.type === 'progress' && msg.handled !== progress.handled) Object.assign(progress, { handled: msg.handled, at: Date.now() })
    waiting.get(msg.type)?.(msg)
  })
  return { child, progress, until: (type) => new Promise((resolve) => waiting.set(type, resolve)) }
}

async function measure(scenario) {
  const database = `groups_bench_${new ObjectId().toHexString()}`
  const jobs = layouts[scenario]()
  let worker
  try {
    await fill(database, jobs)
    worker = spawnWorker({ uri: wire.uri, database, concurrency: CONCURRENCY, groupConcurrency: scenario.endsWith('c2') ? 2 : undefined })
    await worker.until('ready')
    wire.reset()
    const serverBefore = serverCpuSeconds()
    const goAt = wallMs()
    worker.child.send({ type: 'go' })
    const fairness = scenario === 'fair' || scenario === 'fifo'
    // Fairness runs until every tenant started (or the window); the others the window.
    const tenantsTotal = 100
    for (;;) {
      if (worker.progress.handled >= WINDOW) break
      if (Date.now() - worker.progress.at > STALL_MS) throw new Error(`stalled at ${worker.progress.handled}`)
      await sleep(20)
    }
    const serverAfter = serverCpuSeconds()
    const sent = wire.counts()
    const handledAtStop = worker.progress.handled
    worker.child.send({ type: 'stop' })
    const r = await worker.until('result')
    const seconds = (r.lastAt - goAt) / 1000
    const row = {
      jobsPerSecond: r.handled / seconds,
      workerCpuPer1000: (r.cpuSeconds * 1000) / r.handled,
      serverCpuPer1000: serverBefore == null || serverAfter == null ? null : ((serverAfter - serverBefore) * 1000) / r.handled,
      roundTripsPerJob: sent.total / handledAtStop,
      byCommand: Object.fromEntries(Object.entries(sent.byCommand).map(([k, v]) => [k, +(v / handledAtStop).toFixed(3)])),
    }
    if (fairness) {
      const starts = Object.values(r.firstStart)
      row.tenantsStarted = starts.length
      row.allTenantsStartedMs = starts.length === tenantsTotal ? Math.max(...starts) - goAt : null
    }
    return row
  } finally {
    worker?.child.kill('SIGKILL')
    const client = await MongoClient.connect(uri)
    await client.db(database).dropDatabase()
    await client.close()
  }
}

const samples = Object.fromEntries(scenarios.map((s) => [s, []]))
for (let run = 1; run <= runs; run++) {
  for (const scenario of scenarios) {
    try {
      const res = await measure(scenario)
      samples[scenario].push(res)
      const tenants = res.tenantsStarted === undefined ? '' : `, ${res.tenantsStarted}/100 tenants started${res.allTenantsStartedMs == null ? '' : ` (all after ${res.allTenantsStartedMs.toFixed(0)} ms)`}`
      console.log(`${scenario.padEnd(11)} run ${run}: ${res.jobsPerSecond.toFixed(0)} jobs/s, ${res.roundTripsPerJob.toFixed(2)} round trips/job ${JSON.stringify(res.byCommand)}, worker CPU ${res.workerCpuPer1000.toFixed(2)} s / 1,000, server CPU ${res.serverCpuPer1000?.toFixed(2) ?? 'n/a'} s / 1,000${tenants}`)
    } catch (err) {
      console.log(`${scenario} run ${run}: ${err.message}`)
    }
  }
}
const rows = scenarios.map((scenario) => {
  const s = samples[scenario]
  const pick = (k) => (s.some((x) => x[k] != null) ? median(s.map((x) => x[k]).filter((v) => v != null)) : null)
  return {
    scenario,
    runs: s.length,
    jobsPerSecond: pick('jobsPerSecond'),
    workerCpuPer1000: pick('workerCpuPer1000'),
    serverCpuPer1000: pick('serverCpuPer1000'),
    roundTripsPerJob: pick('roundTripsPerJob'),
    tenantsStarted: pick('tenantsStarted'),
    allTenantsStartedMs: pick('allTenantsStartedMs'),
  }
})
console.table(rows)
writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), window: WINDOW, concurrency: CONCURRENCY, rows }, null, 2) + '\n')
console.log(`wrote ${out}`)
await wire.close()
