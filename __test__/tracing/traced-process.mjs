// One process of the cross-process tracing test, with an OpenTelemetry SDK exporting to
// memory. Prints its finished spans as one JSON line on exit.
//   node traced-process.mjs produce <database>   enqueues inside a "POST /signup" span
//   node traced-process.mjs work <database> <runs>  runs jobs until <runs> runs ended
import { context, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'

import { Monque } from '../../dist/index.mjs'

const [role, database, runs] = process.argv.slice(2)
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const tracer = trace.getTracer('app')

const monque = new Monque(process.env.MONGODB_URI, {
  database, pollInterval: 50, leaseDuration: 1500, heartbeatInterval: 300, baseRetryInterval: 10, logger: false,
})
await monque.initialize()
const ids = {}

if (role === 'produce') {
  await tracer.startActiveSpan('POST /signup', { kind: SpanKind.SERVER }, async (request) => {
    ids.mail = (await monque.enqueue('send-mail', { to: 'ada' })).id
    ids.flaky = (await monque.enqueue('flaky', { n: 1 })).id
    await monque.enqueueMany([{ name: 'send-mail', data: { to: 'alan' } }, { name: 'send-mail', data: { to: 'grace' } }])
    request.end()
  })
  // Outside any span: a root producer span, still carried to its run.
  ids.orphan = (await monque.enqueue('send-mail', { to: 'barbara' })).id
} else {
  let ended = 0
  const done = new Promise((resolve) => {
    const count = () => ++ended === Number(runs) && resolve()
    monque.on('job:complete', count)
    monque.on('job:fail', count)
  })
  monque.register('send-mail', async (job) => {
    // A span the handler starts nests under the run's.
    await tracer.startActiveSpan('smtp.send', async (span) => {
      span.setAttribute('to', job.data.to)
      span.end()
    })
  })
  monque.register('flaky', async (job) => {
    if (job.failCount === 0) throw new Error('first attempt fails')
    return 'ok'
  }, { maxRetries: 3 })
  monque.start()
  await done
  await monque.stop()
}
const spans = exporter.getFinishedSpans().map((s) => ({
  name: s.name,
  kind: s.kind,
  traceId: s.spanContext().traceId,
  spanId: s.spanContext().spanId,
  parentSpanId: s.parentSpanContext?.spanId,
  attributes: s.attributes,
  events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
  links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attributes: l.attributes })),
  status: s.status,
}))
process.stdout.write(JSON.stringify({ ids, spans }) + '\n')
process.exit(0)
