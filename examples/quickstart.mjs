// Enqueue a few jobs, process them with a worker, print what happened.
//   MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0 node examples/quickstart.mjs
import { Monque, UnrecoverableError } from '../dist/index.mjs'

const monque = new Monque(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/?directConnection=true', {
  database: 'monque_example',
  collectionName: `quickstart_${Date.now()}`,
  baseRetryInterval: 100, // retry quickly so the example shows a retry
})

monque.on('job:start', (job) => console.log(`start     ${job.name} ${JSON.stringify(job.data)} (attempt ${job.failCount + 1})`))
monque.on('job:complete', ({ job, duration }) => console.log(`complete  ${job.name} ${JSON.stringify(job.data)} in ${duration.toFixed(1)} ms`))
monque.on('job:fail', ({ job, error, willRetry }) => console.log(`fail      ${job.name}: ${error.message}${willRetry ? ' (will retry)' : ''}`))

let flaky = 0
monque.register('send-email', async (job) => {
  await new Promise((r) => setTimeout(r, 20)) // pretend to talk to an SMTP server
  return { delivered: job.data.to }
})
monque.register('resize-image', async (job) => {
  if (flaky++ === 0) throw new Error('image service busy')
  if (!job.data.width) throw new UnrecoverableError('width is required')
})

await monque.initialize()
monque.start()
console.log(`worker started (${monque.notifyMode})`)

await monque.now('send-email', { to: 'ada@example.com' })
await monque.enqueue('send-email', { to: 'grace@example.com' }, { uniqueKey: 'welcome:grace' })
await monque.enqueue('send-email', { to: 'grace@example.com' }, { uniqueKey: 'welcome:grace' }) // deduplicated
await monque.now('resize-image', { id: 7, width: 320 })
const { inserted } = await monque.enqueueMany([1, 2, 3].map((n) => ({ name: 'send-email', data: { to: `user${n}@example.com` } })))
console.log(`enqueued 1 + 1 unique (+1 duplicate) + 1 + ${inserted} in a batch`)

// Wait until every job finished, then shut down gracefully.
let done = 0
await new Promise((resolve) => monque.on('job:complete', () => ++done === 6 && resolve()))
await monque.stop()
console.log(`all ${done} jobs completed; stopped`)
