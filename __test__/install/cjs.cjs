// A user's CommonJS script: the same round trip through require().
const { Monque, MonqueError } = require('monque')
const assert = require('node:assert/strict')

async function main() {
  const monque = new Monque(process.env.MONGODB_URI, { database: 'monque_install_test', collectionName: `cjs_${Date.now()}` })
  monque.register('greet', async (job) => `hello ${job.data.who}`)
  await monque.initialize()
  monque.start()
  const done = new Promise((resolve) => monque.once('job:complete', resolve))
  const job = await monque.enqueue('greet', { who: 'cjs' })
  assert.equal((await done).job.id, job.id)
  assert.equal((await monque.getJob(job.id)).result, 'hello cjs')
  // Bad input is refused with a typed error.
  await assert.rejects(monque.enqueue('', {}), (err) => err instanceof MonqueError && err.code === 'INVALID_JOB_NAME')
  await monque.stop()
  console.log('cjs: job completed with result "hello cjs"')
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
