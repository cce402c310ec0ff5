// A worker process for the reliability tests: `node worker.mjs '<json config>'`.
// Runs `config.name` jobs whose handler records each execution (start, end, pid) in the
// `executions` collection and works for `config.workMs` (a [min, max] range in ms, or
// until its signal aborts when `config.untilAborted`, then records when and why). Says 'ready' over IPC once
// started; `config.limiter` rate-limits the worker (`config.groupConcurrency` and
// `config.groupLimiter` cap each group); a job with `data.poison` kills the
// process mid-run. On SIGTERM stops with `config.shutdownTimeout` and exits.
import { MongoClient } from 'mongodb'
import { Monque } from '../../dist/index.mjs'

const config = JSON.parse(process.argv[2])
const client = await MongoClient.connect(process.env.MONGODB_URI)
const executions = client.db(config.database).collection('executions')
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })

// `config.uri` (e.g. through a fault-injecting proxy) is the queue's; the execution log
// always goes straight to the server.
const monque = new Monque(config.uri ?? process.env.MONGODB_URI, {
  database: config.database,
  workerConcurrency: config.concurrency,
  pollInterval: 100,
  leaseDuration: config.leaseDuration,
  heartbeatInterval: config.heartbeatInterval,
  changeStreams: config.changeStreams ?? true,
  maxStalls: config.maxStalls,
  maxRetries: config.maxRetries,
  baseRetryInterval: config.baseRetryInterval,
  jitter: config.baseRetryInterval === undefined ? undefined : 0,
  serverSelectionTimeout: config.serverSelectionTimeout,
  logger: false,
})
monque.register(
  config.name,
  async (job) => {
    const { insertedId } = await executions.insertOne({ jobId: job.id, group: job.group, pid: process.pid, start: new Date() })
    // A poison job: crashes its process on every run (as an OOM or a native crash would).
    if (job.data.poison) process.exit(3)
    if (config.untilAborted) {
      await sleep(60_000, job.signal)
      const reason = job.signal.reason?.code
      await executions.updateOne({ _id: insertedId }, { $set: { abortedAt: new Date(), reason } })
    } else {
      const [min, max] = config.workMs
      await sleep(min + Math.random() * (max - min), job.signal)
      if (job.signal.aborted) {
        // Stopped early (a lost lease): say why; its result will not be written.
        await executions.updateOne({ _id: insertedId }, { $set: { abortedAt: new Date(), reason: job.signal.reason?.code } })
      }
    }
    await executions.updateOne({ _id: insertedId }, { $set: { end: new Date() } })
  },
  { limiter: config.limiter, groupConcurrency: config.groupConcurrency, groupLimiter: config.groupLimiter },
)
await monque.initialize()
monque.start()

process.on('SIGTERM', async () => {
  const handedBack = await monque.stop({ timeout: config.shutdownTimeout })
  process.send?.({ type: 'stopped', handedBack })
  await client.close()
  process.exit(0)
})
process.send({ type: 'ready' })
// For the soak: RSS every second.
if (config.reportRss) setInterval(() => process.connected && process.send({ type: 'rss', rss: process.memoryUsage().rss }), 1000).unref()
