// A user's ESM script: enqueue one job, process it, check its stored result.
import { Monque } from 'monque'
import assert from 'node:assert/strict'

const monque = new Monque(process.env.MONGODB_URI, { database: 'monque_install_test', collectionName: `esm_${Date.now()}` })
monque.register('add', async (job) => job.data.a + job.data.b)
await monque.initialize()
monque.start()
const done = new Promise((resolve) => monque.once('job:complete', resolve))
const job = await monque.enqueue('add', { a: 2, b: 3 })
const { job: completed } = await done
assert.equal(completed.id, job.id)
assert.equal((await monque.getJob(job.id)).result, 5)
await monque.stop()
console.log('esm: job completed with result 5')
