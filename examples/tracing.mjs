// One trace from a request to the run of the job it enqueued. Prints the spans as a tree.
//   npm run example:tracing     (or: MONGODB_URI=... node examples/tracing.mjs)
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { Monque } from '../dist/index.mjs'

// Register the SDK before the queue connects (in an app: the OTLP exporter, a BatchSpanProcessor).
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const tracer = trace.getTracer('shop')

const monque = new Monque(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017', {
  database: 'monque_example',
  collectionName: `tracing_${Date.now()}`,
})
const done = new Promise((resolve) => monque.once('job:complete', resolve))
monque.register('send-mail', async (job) => {
  // Spans the handler starts nest under the run's span.
  await tracer.startActiveSpan('smtp.send', async (span) => {
    span.setAttribute('mail.to', job.data.to)
    span.end()
  })
})
await monque.initialize()
monque.start()

await tracer.startActiveSpan('POST /signup', async (request) => {
  await monque.enqueue('send-mail', { to: 'ada@example.com' }) // a producer span, its context stored on the job
  request.end()
})
await done
await monque.stop()

const spans = exporter.getFinishedSpans()
const print = (parentId, depth) => {
  for (const s of spans.filter((s) => s.parentSpanContext?.spanId === parentId)) {
    console.log(`${'  '.repeat(depth)}${s.name}  trace=${s.spanContext().traceId} ${JSON.stringify(s.attributes)}`)
    print(s.spanContext().spanId, depth + 1)
  }
}
print(undefined, 0)
