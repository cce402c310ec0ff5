// How monque's costs grow with the backlog and with the number of worker processes:
// for backlogs of 1k, 10k and 100k due jobs and 1, 2 and 4 worker processes
// (concurrency 10 each), the throughput over the first `--window` jobs taken from the
// backlog, the worker processes' CPU and peak RSS, and the server's CPU over the same
// time (when the server runs on this machine: its pid from scripts/test-server.sh);
// then, with the same backlogs pending under a name no worker handles, the pickup
// latency of new jobs (1 every 200 ms, from another process).
//
//   MONGODB_URI=… node bench/growth.mjs [--runs 3] [--backlogs 1000,10000,100000]
//                                       [--processes 1,2,4] [--window 2000]
//
// Writes bench/growth.json; its table goes into RESULTS.md by hand (with what it means).
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { MongoClient, ObjectId } from 'mongodb'
import { Monque } from '../dist/index.mjs'
import { serverCpuSeconds } from './server-cpu.mjs'
import { spawn, waitHandled, wallMs } from './spawn.mjs'
import { median, percentile } from './stats.mjs'

const uri = process.env.MONGODB_URI
if (!uri) throw new Error('MONGODB_URI is not set')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : fallback
}
const runs = Number(arg('runs', 3))
const backlogs = arg('backlogs', '1000,10000,100000').split(',').map(Number)
const processCounts = arg('processes', '1,2,4').split(',').map(Number)
const WINDOW = Number(arg('window', 2000))
const CONCURRENCY = 10
const LATENCY_JOBS = 50
const LATENCY_EVERY_MS = 200
const STALL_MS = 120_000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** `count` jobs of `name` in one fresh database, through the public batch API. */
async function fill(database, name, count) {
  const producer = new Monque(uri, { database, logger: false })
  await producer.initialize()
  for (let i = 0; i < count; i += 1000) {
    const n = Math.min(1000, count - i)
    await producer.enqueueMany(Array.from({ length: n }, (_, k) => ({ name, data: { i: i + k } })))
  }
  await producer.stop()
}

async function dropDatabase(database) {
  const client = await MongoClient.connect(uri)
  await client.db(database).dropDatabase()
  await client.close()
}

async function throughput(backlog, processes) {
  const database = `growth_${new ObjectId().toHexString()}`
  let children = []
  try {
    await fill(database, 'noop', backlog)
    children = Array.from({ length: processes }, () =>
      spawn('worker', { system: 'monque', uri, database, concurrency: CONCURRENCY, pollMs: 1000 }),
    )
    await Promise.all(children.map((c) => c.until('ready')))
    const window = Math.min(WINDOW, backlog)
    const serverBefore = serverCpuSeconds()
    const goAt = wallMs()
    for (const c of children) c.send({ type: 'go' })
    await waitHandled(children, window, STALL_MS)
    const serverAfter = serverCpuSeconds()
    const results = await Promise.all(
      children.map((c) => {
        c.send({ type: 'stop' })
        return c.until('result')
      }),
    )
    const handled = results.reduce((n, r) => n + r.handled, 0)
    const seconds = (Math.max(...results.map((r) => r.lastAt)) - goAt) / 1000
    return {
      jobsPerSecond: handled / seconds,
      workerCpuPer1000: (results.reduce((s, r) => s + r.cpuSeconds, 0) * 1000) / handled,
      serverCpuPer1000: serverBefore == null || serverAfter == null ? null : ((serverAfter - serverBefore) * 1000) / handled,
      peakRssMb: Math.max(...results.map((r) => r.peakRssMb)),
    }
  } finally {
    for (const c of children) c.kill()
    await dropDatabase(database)
  }
}

async function latency(backlog) {
  const database = `growth_${new ObjectId().toHexString()}`
  let child
  let producer
  try {
    await fill(database, 'elsewhere', backlog)
    child = spawn('latency', { system: 'monque', uri, database, concurrency: CONCURRENCY, pollMs: 1000, self: false, count: LATENCY_JOBS, everyMs: LATENCY_EVERY_MS })
    await child.until('ready')
    producer = new Monque(uri, { database, logger: false })
    await producer.initialize()
    for (let i = 0; i < LATENCY_JOBS; i++) {
      await sleep(LATENCY_EVERY_MS)
      producer.enqueue('noop', { i, t: wallMs() }).catch((e) => console.error(`  ${e}`))
    }
    const deadline = Date.now() + STALL_MS
    while (child.progress.handled < LATENCY_JOBS && Date.now() < deadline) await sleep(20)
    child.send({ type: 'stop' })
    const { latencies } = await child.until('result')
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) }
  } finally {
    child?.kill()
    await producer?.stop()
    await dropDatabase(database)
  }
}

const rows = []
for (const backlog of backlogs) {
  for (const processes of processCounts) {
    const samples = []
    for (let r = 1; r <= runs; r++) {
      try {
        const res = await throughput(backlog, processes)
        samples.push(res)
        console.log(`backlog ${backlog} × ${processes} process(es), run ${r}: ${res.jobsPerSecond.toFixed(0)} jobs/s, worker CPU ${res.workerCpuPer1000.toFixed(2)} s / 1,000, server CPU ${res.serverCpuPer1000?.toFixed(2) ?? 'n/a'} s / 1,000, RSS ${res.peakRssMb.toFixed(0)} MB`)
      } catch (err) {
        console.log(`backlog ${backlog} × ${processes} process(es), run ${r}: ${err.message}`)
      }
    }
    const pick = (k) => median(samples.map((s) => s[k]))
    rows.push({ backlog, processes, jobsPerSecond: pick('jobsPerSecond'), workerCpuPer1000: pick('workerCpuPer1000'), serverCpuPer1000: pick('serverCpuPer1000'), peakRssMb: pick('peakRssMb'), runs: samples.length })
  }
  const lat = []
  for (let r = 1; r <= runs; r++) {
    try {
      const res = await latency(backlog)
      lat.push(res)
      console.log(`backlog ${backlog} pending elsewhere, run ${r}: pickup p50 ${res.p50.toFixed(1)} ms, p99 ${res.p99.toFixed(1)} ms`)
    } catch (err) {
      console.log(`backlog ${backlog} latency, run ${r}: ${err.message}`)
    }
  }
  rows.push({ backlog, latencyP50: median(lat.map((l) => l.p50)), latencyP99: median(lat.map((l) => l.p99)), runs: lat.length })
}
const out = { date: new Date().toISOString(), runs, window: WINDOW, concurrency: CONCURRENCY, machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`, rows }
writeFileSync(new URL('./growth.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`)
console.log('wrote bench/growth.json')
