// The side-by-side benchmark: every system measured in one run on one server, each
// measurement in fresh processes and a fresh database, repeated and reduced to medians.
// Systems take turns within each repetition so the machine's drift hits all of them.
//
//   node bench/run.mjs [--runs 3] [--systems monque,agenda,raw] [--only enqueue,processing,latency,roundtrips]
//                      [--out results.json]
//
// @monque/core runs when MONQUE_CORE_PATH names its build (bench/build-monque-core.sh);
// `monque (baseline)` runs another build of ours, the native addon MONQUE_BASELINE_NATIVE
// names, for before/after figures in one run. Either is skipped, with the reason
// written into the results, when its variable is unset.
//
// Writes bench/results.json; bench/report.mjs turns it into RESULTS.md and the chart.
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { MongoClient, ObjectId } from 'mongodb'
import { spawn, waitHandled, wallMs } from './spawn.mjs'
import { median, percentile } from './stats.mjs'
import { dropDatabase, enqueueEach, systems, unavailable } from './systems.mjs'
import { serverCpuSeconds } from './server-cpu.mjs'
import { startWireCounter } from './wire-counter.mjs'

const uri = process.env.MONGODB_URI
if (!uri) throw new Error('MONGODB_URI is not set (npm run bench starts the embedded server)')

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : fallback
}
const runs = Number(arg('runs', 3))
const only = arg('only', 'enqueue,processing,latency,roundtrips').split(',')
// The variants of ours (claimBatch 1, telemetry off, OTel on) run when asked by name.
const asked = arg('systems', 'monque,monque (baseline),agenda,@monque/core,raw').split(',')
const skipped = Object.fromEntries(asked.filter((s) => unavailable(s)).map((s) => [s, unavailable(s)]))
const chosen = asked.filter((s) => !skipped[s])
for (const [s, why] of Object.entries(skipped)) console.log(`skipping ${s}: ${why}`)
const ENQUEUE_JOBS = Number(arg('enqueue-jobs', 5000))
const BATCH = 500
const IN_FLIGHT = 20
const PROCESS_JOBS = Number(arg('jobs', 1000))
const LATENCY_JOBS = Number(arg('latency-jobs', 200))
const LATENCY_EVERY_MS = 50
// The low-rate stream: below every system's capacity, so it measures pickup alone.
const SLOW_LATENCY_JOBS = Number(arg('slow-latency-jobs', 40))
const SLOW_LATENCY_EVERY_MS = 500
const POLL_MS = 1000
const STALL_MS = 60_000

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const freshDatabase = () => `bench_${new ObjectId().toHexString()}`

async function enqueue(system, batch) {
  const database = freshDatabase()
  try {
    const child = spawn('enqueue', { system, uri, database, concurrency: 1, pollMs: POLL_MS, count: ENQUEUE_JOBS, inFlight: IN_FLIGHT, batch })
    const { jobsPerSecond } = await child.until('result')
    await child.exited
    return jobsPerSecond
  } finally {
    await dropDatabase(uri, database)
  }
}

/** Fills a fresh database with `PROCESS_JOBS` due jobs through the system's own API. */
async function prefill(system, database) {
  const producer = await systems[system]({ uri, database, concurrency: 1, pollMs: POLL_MS })
  if (producer.enqueueMany) {
    await producer.enqueueMany(Array.from({ length: PROCESS_JOBS }, (_, i) => ({ i })))
  } else {
    await enqueueEach(producer, PROCESS_JOBS, IN_FLIGHT)
  }
  await producer.close()
}

/**
 * `processes` workers at `concurrency` each process `PROCESS_JOBS` due jobs. With
 * `countWire` they reach the server through a relay that counts their commands
 * (bench/wire-counter.mjs): round trips per job, not timed (the relay adds latency).
 */
async function processing(system, concurrency, processes, countWire = false) {
  const database = freshDatabase()
  let children = []
  const wire = countWire ? await startWireCounter(uri) : null
  try {
    await prefill(system, database)
    const workerUri = wire?.uri ?? uri
    children = Array.from({ length: processes }, () => spawn('worker', { system, uri: workerUri, database, concurrency, pollMs: POLL_MS }))
    await Promise.all(children.map((c) => c.until('ready')))
    wire?.reset()
    const serverCpuAtGo = serverCpuSeconds()
    const goAt = wallMs()
    for (const c of children) c.send({ type: 'go' })
    await waitHandled(children, PROCESS_JOBS, STALL_MS)
    const sent = wire?.counts()
    const serverCpu = serverCpuAtGo == null ? null : serverCpuSeconds() - serverCpuAtGo
    const results = await Promise.all(
      children.map((c) => {
        c.send({ type: 'stop' })
        return c.until('result')
      }),
    )
    await Promise.all(children.map((c) => c.exited))
    const handled = results.reduce((n, r) => n + r.handled, 0)
    if (handled !== PROCESS_JOBS) throw new Error(`${system}: handled ${handled} of ${PROCESS_JOBS} jobs`)
    const seconds = (Math.max(...results.map((r) => r.lastAt)) - goAt) / 1000
    if (sent) return { roundTripsPerJob: sent.total / PROCESS_JOBS, byCommand: sent.byCommand }
    return {
      jobsPerSecond: PROCESS_JOBS / seconds,
      cpuPer1000: (results.reduce((s, r) => s + r.cpuSeconds, 0) * 1000) / PROCESS_JOBS,
      serverCpuPer1000: serverCpu == null ? null : (serverCpu * 1000) / PROCESS_JOBS,
      peakRssMb: Math.max(...results.map((r) => r.peakRssMb)),
    }
  } finally {
    for (const c of children) c.kill()
    await wire?.close()
    await dropDatabase(uri, database)
  }
}

/** Idle workers; one job every `everyMs`, `count` jobs, enqueued here or in the worker's process. */
async function latency(system, self, count, everyMs) {
  const database = freshDatabase()
  let child
  let producer
  try {
    child = spawn('latency', { system, uri, database, concurrency: 10, pollMs: POLL_MS, self, count, everyMs })
    await child.until('ready')
    if (!self) {
      producer = await systems[system]({ uri, database, concurrency: 1, pollMs: POLL_MS })
      for (let i = 0; i < count; i++) {
        await sleep(everyMs)
        producer.enqueue({ i, t: wallMs() }).catch((e) => console.error(`  ${system}: ${e}`))
      }
    }
    await waitHandled([child], count, STALL_MS)
    child.send({ type: 'stop' })
    const { latencies } = await child.until('result')
    await child.exited
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) }
  } finally {
    child?.kill()
    await producer?.close()
    await dropDatabase(uri, database)
  }
}

/** Every measurement: an id, what it is, its unit, and which direction is better. */
const plan = []
if (only.includes('enqueue')) {
  plan.push({ id: 'enqueue-single', label: `Enqueue ${ENQUEUE_JOBS}, one at a time (${IN_FLIGHT} in flight)`, unit: 'jobs/s', better: 'higher', run: (s) => enqueue(s, 0) })
  plan.push({ id: 'enqueue-batch', label: `Enqueue ${ENQUEUE_JOBS} in batches of ${BATCH}`, unit: 'jobs/s', better: 'higher', run: (s) => enqueue(s, BATCH) })
}
if (only.includes('processing')) {
  for (const [c, p] of [
    [1, 1],
    [10, 1],
    [50, 1],
    [10, 2],
  ]) {
    const where = p === 1 ? 'one process' : `${p} processes`
    const id = `process-c${c}-p${p}`
    plan.push({
      id,
      label: `Process ${PROCESS_JOBS} jobs, concurrency ${c}, ${where}`,
      unit: 'jobs/s',
      better: 'higher',
      run: (s) => processing(s, c, p),
      derived: [
        { id: `${id}-cpu`, label: `Worker CPU per 1,000 jobs (concurrency ${c}, ${where})`, unit: 'CPU s', better: 'lower', pick: (r) => r.cpuPer1000 },
        { id: `${id}-rss`, label: `Peak worker RSS (concurrency ${c}, ${where})`, unit: 'MB', better: 'lower', pick: (r) => r.peakRssMb },
        { id: `${id}-server-cpu`, label: `Server CPU per 1,000 jobs (concurrency ${c}, ${where})`, unit: 'CPU s', better: 'lower', pick: (r) => r.serverCpuPer1000 },
      ],
      pick: (r) => r.jobsPerSecond,
    })
  }
}
if (only.includes('latency')) {
  for (const [count, everyMs, rate] of [
    [LATENCY_JOBS, LATENCY_EVERY_MS, `${1000 / LATENCY_EVERY_MS} jobs/s`],
    [SLOW_LATENCY_JOBS, SLOW_LATENCY_EVERY_MS, `1 job per ${SLOW_LATENCY_EVERY_MS} ms`],
  ]) {
    for (const self of [true, false]) {
      const where = self ? 'same process' : 'other process'
      const id = `latency-${everyMs}ms-${self ? 'same' : 'other'}`
      plan.push({
        id,
        label: `Pickup latency p50, ${rate}, ${where}`,
        unit: 'ms',
        better: 'lower',
        run: (s) => latency(s, self, count, everyMs),
        pick: (r) => r.p50,
        derived: [{ id: `${id}-p99`, label: `Pickup latency p99, ${rate}, ${where}`, unit: 'ms', better: 'lower', pick: (r) => r.p99 }],
      })
    }
  }
}
if (only.includes('roundtrips')) {
  for (const c of [1, 50]) {
    plan.push({
      id: `roundtrips-c${c}`,
      label: `Round trips per job (commands sent by the worker), concurrency ${c}`,
      unit: 'round trips',
      better: 'lower',
      run: (s) => processing(s, c, 1, true),
      pick: (r) => r.roundTripsPerJob,
      detail: (r) => r.byCommand,
    })
  }
}

const samples = {} // metric id -> system -> [values]
const details = {} // metric id -> system -> what the last repetition broke it into
const record = (id, system, value) => {
  samples[id] ??= {}
  ;(samples[id][system] ??= []).push(value ?? null)
}
for (let r = 1; r <= runs; r++) {
  for (const step of plan) {
    for (const system of chosen) {
      let result = null
      try {
        result = await step.run(system)
      } catch (err) {
        console.error(`  ${step.id} ${system}: ${err.message}`)
      }
      const value = result == null ? null : step.pick ? step.pick(result) : result
      record(step.id, system, value)
      if (result && step.detail) (details[step.id] ??= {})[system] = step.detail(result)
      for (const d of step.derived ?? []) record(d.id, system, result == null ? null : d.pick(result))
      console.log(`run ${r}/${runs}  ${step.id.padEnd(22)} ${system.padEnd(22)} ${value == null ? 'n/a' : value.toFixed(1)}`)
    }
  }
}

const client = await MongoClient.connect(uri)
const build = await client.db('admin').command({ buildInfo: 1 })
await client.close()
const metrics = plan.flatMap((step) => [step, ...(step.derived ?? [])]).map(({ id, label, unit, better }) => ({
  id,
  label,
  unit,
  better,
  median: Object.fromEntries(chosen.map((s) => [s, median(samples[id]?.[s] ?? [])])),
  samples: samples[id],
}))
const results = {
  date: new Date().toISOString(),
  runs,
  server: `${build.version}${uri.includes('127.0.0.1') ? ' (local)' : ''}`,
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
  jobs: PROCESS_JOBS,
  systems: chosen,
  skipped,
  metrics,
  details,
}
const out = arg('out', 'results.json')
writeFileSync(new URL(`./${out}`, import.meta.url), `${JSON.stringify(results, null, 2)}\n`)
console.log(`wrote bench/${out}`)
