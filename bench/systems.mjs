// The systems the benchmark compares, behind one small interface:
//   open({ uri, database, concurrency, pollMs }) -> {
//     enqueue(data), enqueueMany(list) | null (no batch API),
//     work(handler) (register the no-op handler), start(), close() }
// Each one is configured the same way: one job name, `concurrency` handlers in flight,
// a 1 s poll as the fallback, its own way of hearing about new jobs in real time.
import { resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MongoClient, ObjectId } from 'mongodb'

const NAME = 'noop'

/** Ours, through the published TypeScript API. `claimBatch` 1 turns batch claims off. */
async function monque({ uri, database, concurrency, pollMs, claimBatch, telemetry }) {
  const { Monque } = await import('../dist/index.mjs')
  const queue = new Monque(uri, {
    database,
    workerConcurrency: concurrency,
    pollInterval: pollMs,
    logger: false,
    ...(claimBatch === undefined ? {} : { claimBatch }),
    ...(telemetry === undefined ? {} : { telemetry }),
  })
  await queue.initialize()
  return {
    enqueue: (data) => queue.enqueue(NAME, data),
    enqueueMany: (list) => queue.enqueueMany(list.map((data) => ({ name: NAME, data }))),
    work: (handler) => queue.register(NAME, async (job) => handler(job.data)),
    start: () => queue.start(),
    close: () => queue.stop(),
  }
}

/**
 * Ours with OpenTelemetry on: an SDK that samples every span (a producer span per
 * enqueue, a consumer span per run) and batches them to an exporter that drops them,
 * and the metrics read every 5 s. What tracing costs the queue, without the cost of
 * shipping spans anywhere. The providers are this queue's (not global), so the
 * parent's own producer for other systems stays untraced.
 */
async function monqueTraced(options) {
  const { context } = await import('@opentelemetry/api')
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality } = await import('@opentelemetry/sdk-metrics')
  const drop = { export: (_items, done) => done({ code: 0 }), shutdown: async () => {}, forceFlush: async () => {} }
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(drop)] })
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const metricDrop = { ...drop, selectAggregationTemporality: () => AggregationTemporality.CUMULATIVE }
  const meterProvider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: metricDrop, exportIntervalMillis: 5000 })] })
  return monque({ ...options, telemetry: { tracerProvider, meterProvider } })
}

/** Agenda 6 with its MongoDB backend and its change-stream notifications. */
async function agenda({ uri, database, concurrency, pollMs }) {
  const { Agenda } = await import('agenda')
  const { MongoBackend, MongoChangeStreamNotificationChannel } = await import('@agendajs/mongo-backend')
  const client = await MongoClient.connect(uri)
  const db = client.db(database)
  const queue = new Agenda({
    backend: new MongoBackend({ mongo: db }),
    notificationChannel: new MongoChangeStreamNotificationChannel({ db }),
    processEvery: pollMs,
    maxConcurrency: concurrency,
    defaultConcurrency: concurrency,
    lockLimit: 0,
    defaultLockLimit: 0,
  })
  await queue.ready
  return {
    enqueue: (data) => queue.now(NAME, data),
    enqueueMany: null,
    work: (handler) => queue.define(NAME, async (job) => handler(job.attrs.data), { concurrency }),
    start: () => queue.start(),
    close: async () => {
      await queue.stop()
      await client.close()
    },
  }
}

/**
 * The peer @monque/core (ueberBrot/monque, the same design in TypeScript), built from
 * its sources outside this repository by bench/build-monque-core.sh and loaded from
 * MONQUE_CORE_PATH (its dist/index.mjs). Its change streams on (the default), its
 * safety poll at the same 1 s fallback as the others, `concurrency` handlers in flight.
 * It has no batch enqueue.
 */
async function monqueCore({ uri, database, concurrency, pollMs }) {
  const { Monque } = await import(monqueCorePath())
  const client = await MongoClient.connect(uri)
  const queue = new Monque(client.db(database), {
    workerConcurrency: concurrency,
    instanceConcurrency: concurrency,
    pollInterval: pollMs,
    safetyPollInterval: pollMs,
  })
  await queue.initialize()
  return {
    enqueue: (data) => queue.enqueue(NAME, data),
    enqueueMany: null,
    work: (handler) => queue.register(NAME, async (job) => handler(job.data), { concurrency }),
    start: () => queue.start(),
    close: async () => {
      await queue.stop()
      await client.close()
    },
  }
}

/** Why a system cannot run here, or null when it can. */
export function unavailable(system) {
  if (system === '@monque/core' && !process.env.MONQUE_CORE_PATH) return monqueCoreMissing
  if (system === 'monque (baseline)' && !process.env.MONQUE_BASELINE_NATIVE)
    return 'MONQUE_BASELINE_NATIVE is not set: point it at another build of the addon (a .node file) to compare with'
  if (!systems[system]) return `no such system (${Object.keys(systems).join(', ')})`
  return null
}

/** What a measured process of `system` needs in its environment. */
export function childEnv(system) {
  // The napi-rs loader (index.js) takes its addon from this path when set.
  return system === 'monque (baseline)' ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.MONQUE_BASELINE_NATIVE } : {}
}

/** Where @monque/core's build is, as a URL import() takes. */
function monqueCorePath() {
  const path = process.env.MONQUE_CORE_PATH
  if (!path) throw new Error(monqueCoreMissing)
  return pathToFileURL(resolvePath(path)).href
}

/** Why @monque/core is skipped when it is. */
export const monqueCoreMissing =
  'MONQUE_CORE_PATH is not set: build @monque/core with bench/build-monque-core.sh and point MONQUE_CORE_PATH at its dist/index.mjs'

/**
 * The practical limit: the plain driver doing the round trips one job needs and
 * nothing else. An insert per enqueue; per job one claim (findOneAndUpdate on the
 * same index shape as ours) and one fenced completion. A local enqueue wakes idle
 * loops; otherwise they poll every 10 ms (far more often than any queue would).
 */
async function raw({ uri, database, concurrency }) {
  const client = await MongoClient.connect(uri)
  const jobs = client.db(database).collection('jobs')
  await jobs.createIndex({ name: 1, status: 1, priority: -1, nextRunAt: 1 })
  const doc = (data) => {
    const now = new Date()
    return { name: NAME, data, status: 'pending', priority: 0, nextRunAt: now, failCount: 0, createdAt: now, updatedAt: now }
  }
  let handler = async () => {}
  let running = false
  const sleepers = new Set()
  const wake = () => {
    for (const resolve of sleepers) resolve()
    sleepers.clear()
  }
  const loops = []
  async function loop() {
    while (running) {
      const now = new Date()
      const claimId = new ObjectId()
      const job = await jobs.findOneAndUpdate(
        { name: NAME, status: 'pending', nextRunAt: { $lte: now } },
        { $set: { status: 'processing', claimId, lockedAt: now, updatedAt: now } },
        { sort: { priority: -1, nextRunAt: 1 }, returnDocument: 'after' },
      )
      if (!job) {
        await new Promise((resolve) => {
          const timer = setTimeout(() => {
            sleepers.delete(woken)
            resolve()
          }, 10)
          const woken = () => {
            clearTimeout(timer)
            resolve()
          }
          sleepers.add(woken)
        })
        continue
      }
      await handler(job.data)
      await jobs.updateOne(
        { _id: job._id, claimId, status: 'processing' },
        { $set: { status: 'completed', completedAt: new Date(), updatedAt: new Date() }, $unset: { claimId: '' } },
      )
    }
  }
  return {
    enqueue: async (data) => {
      await jobs.insertOne(doc(data))
      wake()
    },
    enqueueMany: (list) => jobs.insertMany(list.map(doc)),
    work: (h) => {
      handler = h
    },
    start: () => {
      running = true
      for (let i = 0; i < concurrency; i++) loops.push(loop())
    },
    close: async () => {
      running = false
      wake()
      await Promise.all(loops)
      await client.close()
    },
  }
}

export const systems = {
  monque,
  'monque (baseline)': monque,
  'monque (claimBatch 1)': (o) => monque({ ...o, claimBatch: 1 }),
  'monque (telemetry off)': (o) => monque({ ...o, telemetry: false }),
  'monque (OTel on)': monqueTraced,
  agenda,
  '@monque/core': monqueCore,
  raw,
}

/** Enqueues `count` jobs (data `{ i }`) one call at a time, `inFlight` calls at once. */
export async function enqueueEach(queue, count, inFlight) {
  let next = 0
  const lane = async () => {
    while (next < count) await queue.enqueue({ i: next++ })
  }
  await Promise.all(Array.from({ length: inFlight }, lane))
}

/** Drops a benchmark database. */
export async function dropDatabase(uri, database) {
  const client = await MongoClient.connect(uri)
  await client.db(database).dropDatabase()
  await client.close()
}
