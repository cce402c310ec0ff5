// Processing throughput of monque alone: N pre-enqueued no-op jobs, one process,
// several concurrencies, median of R runs. Usage: node bench/throughput.mjs [N] [R]
// (MONGODB_URI must point at a server; `npm run bench` starts the embedded one).
import { MongoClient, ObjectId } from 'mongodb'
import { Monque } from '../dist/index.mjs'

const uri = process.env.MONGODB_URI
if (!uri) throw new Error('MONGODB_URI is not set')
const total = Number(process.argv[2] ?? 1000)
const runs = Number(process.argv[3] ?? 3)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function once(concurrency) {
  const database = `monque_bench_${new ObjectId().toHexString()}`
  const monque = new Monque(uri, { database, workerConcurrency: concurrency, logger: false })
  let done = 0
  let finished
  const allDone = new Promise((r) => (finished = r))
  monque.register('noop', async () => {
    if (++done === total) finished()
  })
  await monque.initialize()
  await monque.enqueueMany(Array.from({ length: total }, (_, i) => ({ name: 'noop', data: { i } })))
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  monque.start()
  await allDone
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  await monque.stop()
  const client = await MongoClient.connect(uri)
  await client.db(database).dropDatabase()
  await client.close()
  return { jobsPerSecond: total / seconds, cpuPer1000: ((cpu.user + cpu.system) / 1e6) * (1000 / total) }
}

for (const concurrency of [1, 10, 50]) {
  const results = []
  for (let r = 0; r < runs; r++) results.push(await once(concurrency))
  console.log(
    JSON.stringify({
      concurrency,
      jobsPerSecond: Math.round(median(results.map((x) => x.jobsPerSecond))),
      cpuSecondsPer1000: Number(median(results.map((x) => x.cpuPer1000)).toFixed(2)),
      runs,
    }),
  )
}
