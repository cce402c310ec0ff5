// The memory check of the reliability tests, in a process of its own (run with
// --expose-gc): processes `batches` × 1,000 jobs, one batch at a time, and reports its
// RSS after a full GC once the first batch and once every batch is done.
import { Monque } from '../../dist/index.mjs'

const { database, batches } = JSON.parse(process.argv[2])
const BATCH = 1000
const monque = new Monque(process.env.MONGODB_URI, { database, workerConcurrency: 50, pollInterval: 100, logger: false })
let done = 0
let wake = () => {}
monque.register('mem', async (job) => {
  if (job.data.pad.length !== 256) throw new Error('payload damaged')
  done++
  wake()
})
await monque.initialize()
monque.start()

const settledRss = () => {
  global.gc()
  global.gc()
  return process.memoryUsage().rss
}
let afterFirst = 0
for (let b = 0; b < batches; b++) {
  await monque.enqueueMany(Array.from({ length: BATCH }, (_, i) => ({ name: 'mem', data: { i, pad: 'x'.repeat(256) } })))
  while (done < (b + 1) * BATCH) await new Promise((r) => (wake = r))
  // Keep the collection small: the embedded server slows down with many documents.
  await monque.deleteJobs({ name: 'mem', status: 'completed' })
  if (b === 0) afterFirst = settledRss()
}
const afterAll = settledRss()
await monque.stop()
process.send({ type: 'result', done, afterFirst, afterAll })
process.exit(0)
