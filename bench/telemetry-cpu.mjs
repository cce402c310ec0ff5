// What OpenTelemetry costs a worker, in one process: 1,000 due no-op jobs processed at
// concurrency 50, worker CPU per job and throughput, with telemetry off (`off`), with
// only the AsyncLocalStorage context manager an OTel app enables (`als`), and with the
// tracing SDK sampling every run into a BatchSpanProcessor whose exporter drops the
// spans (`sdk`). Run each a few times, alternating:
//   for m in off als sdk off als sdk; do MONGODB_URI=... node bench/telemetry-cpu.mjs $m; done
import { Monque } from '../dist/index.mjs'
import { context } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
const [mode] = process.argv.slice(2)
const uri = process.env.MONGODB_URI
const drop = { export: (_i, done) => done({ code: 0 }), shutdown: async () => {}, forceFlush: async () => {} }
let telemetry = false
if (mode !== 'off') context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
if (mode === 'sdk') telemetry = { tracerProvider: new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(drop)] }) }
const db = 'cpu_' + mode + Date.now()
const p = new Monque(uri, { database: db, logger: false, telemetry: false })
await p.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ name: 'x', data: { i } })))
const q = new Monque(uri, { database: db, logger: false, workerConcurrency: 50, telemetry })
let n = 0
const done = new Promise((r) => q.register('x', async () => { if (++n === 1000) r() }))
await q.initialize()
const c0 = process.cpuUsage(); const t0 = performance.now()
q.start()
await done
const c = process.cpuUsage(c0)
console.log(mode.padEnd(4), 'cpu ms/job', ((c.user + c.system) / 1000 / 1000).toFixed(3), 'jobs/s', (1000 / ((performance.now() - t0) / 1000)).toFixed(0))
await q.stop()
process.exit(0)
