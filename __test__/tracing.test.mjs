// OpenTelemetry: one trace from the enqueue to the end of each run, across processes and
// across languages (a Node producer and a Rust worker, and the other way round), against
// the real server. Each process exports to memory and prints its spans (tracing/).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { context, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'

import { Monque } from '../dist/index.mjs'
import { eventually, fast, oid, testDb, uri } from './helpers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const nodeProcess = join(root, '__test__/tracing/traced-process.mjs')
const rustProcess = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug/examples/traced')
const PRODUCER = 3
const CONSUMER = 4
const ERROR = 2

/** Runs one traced process to its end; resolves with the `{ ids, spans }` it printed. */
function runProcess(lang, args) {
  if (lang === 'rust') assert.ok(existsSync(rustProcess), `${rustProcess} is missing: cargo build --example traced --features opentelemetry`)
  const [cmd, argv] = lang === 'rust' ? [rustProcess, args] : [process.execPath, [nodeProcess, ...args]]
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, MONGODB_URI: uri }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code !== 0) return reject(new Error(`${lang} ${args[0]} exited ${code}: ${err}`))
      resolve(JSON.parse(out.trim().split('\n').pop()))
    })
  })
}

const consumerOf = (spans, id) => spans.filter((s) => s.kind === CONSUMER && s.attributes['messaging.message.id'] === id)
const asNumber = (v) => Number(v)

/** What every producer/worker pair must show. */
async function checkOneTrace(producer, worker, jobs) {
  const { ids } = producer
  const request = producer.spans.find((s) => s.name === 'POST /signup')
  assert.ok(request, 'the request span')

  // The producer span: a child of the request, with the messaging attributes.
  const enqueue = producer.spans.find((s) => s.kind === PRODUCER && s.attributes['messaging.message.id'] === ids.mail)
  assert.equal(enqueue.name, 'enqueue send-mail')
  assert.equal(enqueue.traceId, request.traceId)
  assert.equal(enqueue.parentSpanId, request.spanId)
  assert.equal(enqueue.attributes['messaging.system'], 'monque')
  assert.equal(enqueue.attributes['messaging.operation.type'], 'send')
  assert.equal(enqueue.attributes['messaging.destination.name'], 'send-mail')
  const stored = await jobs.findOne({ _id: oid(ids.mail) })
  assert.equal(stored.traceContext.traceparent.slice(0, 52), `00-${request.traceId}-${enqueue.spanId}`)

  // The run: same trace, a child of the producer span, and the handler's span under it.
  const [run] = consumerOf(worker.spans, ids.mail)
  assert.ok(run, 'the run span of the job')
  assert.equal(run.name, 'process send-mail')
  assert.equal(run.traceId, request.traceId)
  assert.equal(run.parentSpanId, enqueue.spanId)
  assert.equal(run.attributes['messaging.system'], 'monque')
  assert.equal(run.attributes['messaging.operation.type'], 'process')
  assert.equal(run.attributes['messaging.destination.name'], 'send-mail')
  assert.equal(asNumber(run.attributes['monque.job.attempt']), 1)
  assert.equal(run.status.code === ERROR, false)
  const handlerSpan = worker.spans.find((s) => s.name === 'smtp.send' && s.parentSpanId === run.spanId)
  assert.ok(handlerSpan, "the handler's own span nests under the run")

  // A batch: one producer span, each job's run a child of it.
  const batch = producer.spans.find((s) => s.kind === PRODUCER && asNumber(s.attributes['messaging.batch.message_count']) === 2)
  assert.equal(batch.traceId, request.traceId)
  const batchRuns = worker.spans.filter((s) => s.kind === CONSUMER && s.parentSpanId === batch.spanId)
  assert.equal(batchRuns.length, 2)

  // A failure is recorded on its attempt; the retry is in the same trace and links to it.
  const flaky = consumerOf(worker.spans, ids.flaky).sort((a, b) => asNumber(a.attributes['monque.job.attempt']) - asNumber(b.attributes['monque.job.attempt']))
  assert.equal(flaky.length, 2)
  const [first, second] = flaky
  assert.equal(first.status.code, ERROR)
  assert.match(first.status.message, /first attempt fails/)
  const exception = first.events.find((e) => e.name === 'exception')
  assert.match(String(exception.attributes['exception.message']), /first attempt fails/)
  assert.notEqual(second.status.code, ERROR)
  for (const attempt of flaky) assert.equal(attempt.traceId, request.traceId)
  assert.deepEqual(
    second.links.map((l) => [l.spanId, l.attributes['monque.link']]),
    [[first.spanId, 'previous-attempt']],
  )
  const flakyJob = await jobs.findOne({ _id: oid(ids.flaky) })
  assert.deepEqual(flakyJob.attempts.map((a) => a.traceparent.slice(36, 52)), [first.spanId, second.spanId])

  // Enqueued outside any span: a trace of its own, still continued by the run.
  const orphanEnqueue = producer.spans.find((s) => s.kind === PRODUCER && s.attributes['messaging.message.id'] === ids.orphan)
  assert.equal(orphanEnqueue.parentSpanId ?? undefined, undefined)
  assert.notEqual(orphanEnqueue.traceId, request.traceId)
  assert.equal(consumerOf(worker.spans, ids.orphan)[0].traceId, orphanEnqueue.traceId)
}

for (const [from, to] of [['node', 'node'], ['node', 'rust'], ['rust', 'node']]) {
  test(`one trace from a ${from} process's enqueue to a ${to} process's runs`, async (t) => {
    const { name, jobs } = await testDb(t)
    const producer = await runProcess(from, ['produce', name])
    // 4 send-mail runs, and flaky's failed first attempt and its retry.
    const worker = await runProcess(to, ['work', name, '6'])
    await checkOneTrace(producer, worker, jobs)
  })
}

// In this process: an SDK exporting to memory.
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const tracer = trace.getTracer('test')

test("a schedule's run starts a trace of its own, linked to the schedule call", async (t) => {
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false })
  let ran
  monque.register('digest', async (job) => {
    ran = job.id
  })
  await monque.initialize()
  const scheduled = await tracer.startActiveSpan('deploy', async (span) => {
    const job = await monque.every('1 second', 'digest', {})
    span.end()
    return job
  })
  monque.start()
  t.after(() => monque.stop())
  await eventually(() => ran === scheduled.id, { within: 10_000, what: 'the first run' })
  const schedule = exporter.getFinishedSpans().find((s) => s.name === 'schedule digest')
  assert.equal(schedule.attributes['messaging.operation.name'], 'schedule')
  assert.equal(schedule.parentSpanContext?.spanId, exporter.getFinishedSpans().find((s) => s.name === 'deploy').spanContext().spanId)
  // Two runs: each its own trace, each linked to the schedule call only (the first run is
  // an earlier occurrence, not an earlier attempt of the second).
  const runs = () => exporter.getFinishedSpans().filter((s) => s.name === 'process digest')
  await eventually(() => runs().length >= 2, { within: 10_000, what: 'two run spans' })
  const [first, second] = runs()
  assert.notEqual(first.spanContext().traceId, schedule.spanContext().traceId)
  assert.notEqual(second.spanContext().traceId, first.spanContext().traceId)
  for (const run of [first, second]) {
    assert.deepEqual(run.links.map((l) => [l.context.spanId, l.attributes['monque.link']]), [[schedule.spanContext().spanId, 'schedule']])
  }
})

test('a run that times out keeps its span: ERROR status, ended at the timeout, and the retry links to it', async (t) => {
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false, baseRetryInterval: 10 })
  monque.register('slow', async (job) => {
    if (job.failCount === 0) await new Promise(() => {}) // hangs, ignoring its signal
  }, { timeout: 300, maxRetries: 1 })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await monque.enqueue('slow', {})
  await eventually(async () => (await monque.getJob(job.id)).status === 'completed', { within: 10_000, what: 'the retry' })
  const runs = () => exporter.getFinishedSpans().filter((s) => s.name === 'process slow')
  await eventually(() => runs().length === 2, { what: 'both run spans' })
  const [first, second] = runs()
  assert.equal(first.status.code, ERROR)
  assert.match(first.status.message, /timeout/)
  assert.deepEqual(second.links.map((l) => [l.context.spanId, l.attributes['monque.link']]), [[first.spanContext().spanId, 'previous-attempt']])
  const done = await monque.getJob(job.id)
  assert.deepEqual(done.attempts.map((a) => a.traceparent?.slice(36, 52)), [first.spanContext().spanId, second.spanContext().spanId])
})

test('without an SDK (a no-op tracer) a run records no span of its own in the attempts', async (t) => {
  const { ProxyTracerProvider } = await import('@opentelemetry/api')
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false, baseRetryInterval: 10, telemetry: { tracerProvider: new ProxyTracerProvider() } })
  monque.register('flaky', async (job) => {
    if (job.failCount === 0) throw new Error('once')
  })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  // Inside a recorded span of the app: the no-op spans carry its context.
  const job = await tracer.startActiveSpan('request', async (span) => {
    const job = await monque.enqueue('flaky', {})
    span.end()
    return job
  })
  await eventually(async () => (await monque.getJob(job.id)).status === 'completed', { what: 'the retry' })
  const done = await monque.getJob(job.id)
  assert.equal(done.traceContext.traceparent.slice(3, 35), exporter.getFinishedSpans().find((s) => s.name === 'request').spanContext().traceId)
  assert.deepEqual(done.attempts.map((a) => a.traceparent), [undefined, undefined])
})

test('an explicit traceContext continues a trace from elsewhere; a malformed one is INVALID_OPTION and writes nothing', async (t) => {
  const { name: database, jobs } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false })
  await monque.initialize()
  // Say, the traceparent header of a request from a service that is not traced here.
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const job = await monque.enqueue('import', {}, { traceContext: { traceparent, tracestate: 'congo=t61rcWkgMzE' } })
  assert.deepEqual((await monque.getJob(job.id)).traceContext, { traceparent, tracestate: 'congo=t61rcWkgMzE' })
  for (const traceContext of [{ traceparent: 'nope' }, { traceparent: traceparent.toUpperCase() }, 'x', { traceparent, tracestate: 'k=' + 'v'.repeat(600) }]) {
    await assert.rejects(monque.enqueue('import', {}, { traceContext }), (err) => err.code === 'INVALID_OPTION' && /traceContext/.test(err.message))
  }
  await assert.rejects(monque.enqueueMany([{ name: 'import', data: {}, options: { traceContext: { traceparent: 'nope' } } }]), { code: 'INVALID_OPTION' })
  assert.equal(await jobs.countDocuments(), 1)
})

test('telemetry: false starts no spans and stores no trace context', async (t) => {
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false, telemetry: false })
  exporter.reset()
  let active = 'unset'
  monque.register('quiet', async () => {
    active = trace.getActiveSpan()
  })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  const job = await tracer.startActiveSpan('request', async (span) => {
    const job = await monque.enqueue('quiet', {})
    span.end()
    return job
  })
  await eventually(async () => (await monque.getJob(job.id)).status === 'completed', { what: 'the run' })
  assert.equal(active, undefined)
  assert.deepEqual(exporter.getFinishedSpans().map((s) => s.name), ['request'])
  const done = await monque.getJob(job.id)
  assert.equal(done.traceContext, undefined)
  assert.equal(done.attempts?.some((a) => a.traceparent), undefined)
  for (const telemetry of ['on', null, { tracerProvider: {} }, { meterProvider: 42 }]) {
    assert.throws(() => new Monque(uri, { telemetry }), { code: 'INVALID_OPTION' }, JSON.stringify(telemetry))
  }
})

test("the metrics as OpenTelemetry instruments: the same numbers as metrics()' Prometheus text", async (t) => {
  const { MeterProvider, MetricReader } = await import('@opentelemetry/sdk-metrics')
  class Reader extends MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  const reader = new Reader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false, baseRetryInterval: 10, telemetry: { meterProvider } })
  monque.register('resize', async (job) => {
    if (job.data.fail && job.failCount === 0) throw new Error('once')
  }, { maxRetries: 2 })
  await monque.initialize()
  monque.start()
  t.after(() => monque.stop())
  for (const data of [{}, {}, { fail: true }]) await monque.enqueue('resize', data)
  await monque.enqueue('nobody-handles', {})
  // Groups of a name nobody handles: one with a due job, one paused.
  await monque.enqueue('tenanted', {}, { group: 'tenant-1' })
  await monque.pauseGroup('tenanted', 'tenant-2')
  await eventually(async () => (await monque.getQueueStats({ name: 'resize' })).completed === 3, { what: '3 completed' })

  const { resourceMetrics } = await reader.collect()
  const metrics = new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]))
  const point = (metric, attrs = {}) =>
    metrics.get(metric)?.dataPoints.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
  const prometheus = await monque.metrics()
  const scraped = (line) => Number(prometheus.split('\n').find((l) => l.startsWith(line + ' '))?.split(' ').pop())

  for (const key of ['enqueued', 'started', 'completed', 'failed', 'retried']) {
    assert.equal(point(`monque.jobs.${key}`, { name: 'resize' }).value, scraped(`monque_jobs_${key}_total{name="resize"}`), key)
  }
  assert.deepEqual([3, 4, 3, 1, 1], ['enqueued', 'started', 'completed', 'failed', 'retried'].map((k) => point(`monque.jobs.${k}`, { name: 'resize' }).value))
  const duration = point('monque.job.duration', { name: 'resize' })
  assert.equal(metrics.get('monque.job.duration').descriptor.unit, 's')
  assert.equal(duration.value.count, 3)
  assert.equal(duration.value.count, scraped('monque_job_duration_seconds_count{name="resize"}'))
  assert.ok(point('monque.claim.duration').value.count >= 1)
  assert.equal(point('monque.queue_depth', { name: 'resize', status: 'completed' }).value, 3)
  assert.equal(point('monque.orphaned_jobs', { name: 'nobody-handles' }).value, 1)
  for (const gauge of ['groups_due', 'groups_paused']) {
    assert.equal(point(`monque.${gauge}`, { name: 'tenanted' }).value, 1, gauge)
    assert.equal(scraped(`monque_${gauge}{name="tenanted"}`), 1, gauge)
  }
  assert.equal(point('monque.live_instances').value, 1)
  assert.equal(point('monque.active_jobs').value, 0)
  assert.equal(typeof point('monque.clock_offset').value, 'number')

  // Durations are handed over once: the next collection adds only new runs.
  await monque.enqueue('resize', {})
  await eventually(async () => (await monque.getQueueStats({ name: 'resize' })).completed === 4, { what: '4 completed' })
  const again = await reader.collect()
  const next = again.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'monque.job.duration')
  assert.equal(next.dataPoints.find((p) => p.attributes.name === 'resize').value.count, 4)
})

test("the README's tracing example runs as printed: one trace from the request to the handler's span", async () => {
  const file = join(root, 'examples/tracing.mjs')
  const { readFileSync } = await import('node:fs')
  assert.ok(readFileSync(join(root, 'README.md'), 'utf8').includes(readFileSync(file, 'utf8')), 'the README shows examples/tracing.mjs as it is')
  const out = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { env: { ...process.env, MONGODB_URI: uri }, stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.on('data', (d) => (text += d))
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`exited ${code}`))))
  })
  const lines = out.trim().split('\n').map((l) => l.match(/^( *)(\S.*?)  trace=([0-9a-f]{32}) /))
  assert.deepEqual(lines.map((m) => [m[1].length / 2, m[2]]), [[0, 'POST /signup'], [1, 'enqueue send-mail'], [2, 'process send-mail'], [3, 'smtp.send']])
  assert.equal(new Set(lines.map((m) => m[3])).size, 1)
})
