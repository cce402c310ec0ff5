// One worker process for bench/groups.mjs: `node groups-child.mjs <json options>`.
// Handles `noop` jobs from `go` until `stop`, noting when each tenant's first job
// started (the job's group, or `data.tenant` for the same jobs enqueued without groups),
// and reports its count, CPU seconds from `go` to its last job, and those first starts.
import { Monque } from '../dist/index.mjs'

const opts = JSON.parse(process.argv[2])
const wallMs = () => performance.timeOrigin + performance.now()
const monque = new Monque(opts.uri, {
  database: opts.database,
  workerConcurrency: opts.concurrency,
  pollInterval: 1000,
  logger: false,
})
let handled = 0
let lastAt = 0
const firstStart = {}
monque.register(
  'noop',
  async (job) => {
    const tenant = job.group ?? job.data.tenant
    if (tenant !== undefined && firstStart[tenant] === undefined) firstStart[tenant] = wallMs()
    handled++
    lastAt = wallMs()
  },
  { groupConcurrency: opts.groupConcurrency },
)
await monque.initialize()
process.on('message', async (msg) => {
  if (msg.type === 'go') {
    cpuAtGo = process.cpuUsage()
    monque.start()
  }
  if (msg.type === 'stop') {
    clearInterval(progress)
    const cpu = process.cpuUsage(cpuAtGo)
    await monque.stop({ timeout: 5000 })
    process.send({ type: 'result', handled, lastAt, cpuSeconds: (cpu.user + cpu.system) / 1e6, firstStart })
    process.exit(0)
  }
})
let cpuAtGo
const progress = setInterval(() => process.send({ type: 'progress', handled }), 50)
process.send({ type: 'ready' })
