// A user's ESM script: enqueue one job, process it, check its stored result; then
// mount the dashboard from `monque/http` and load its page, script and API.
import { Monque } from 'monque'
import { createMonqueHandler } from 'monque/http'
import assert from 'node:assert/strict'
import http from 'node:http'

const monque = new Monque(process.env.MONGODB_URI, { database: 'monque_install_test', collectionName: `esm_${Date.now()}` })
monque.register('add', async (job) => job.data.a + job.data.b)
await monque.initialize()
monque.start()
const done = new Promise((resolve) => monque.once('job:complete', resolve))
const job = await monque.enqueue('add', { a: 2, b: 3 })
const { job: completed } = await done
assert.equal(completed.id, job.id)
assert.equal((await monque.getJob(job.id)).result, 5)
const server = http.createServer(createMonqueHandler(monque, { prefix: '/monque' }))
await new Promise((r) => server.listen(0, '127.0.0.1', r))
const base = `http://127.0.0.1:${server.address().port}/monque/`
assert.match(await (await fetch(base)).text(), /assets\/app\.js/)
assert.equal((await fetch(`${base}assets/app.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8')
assert.equal((await fetch(`${base}assets/app.css`)).status, 200)
const names = await (await fetch(`${base}api/names`)).json()
assert.equal(names.find((n) => n.name === 'add').counts.completed, 1)
server.close()
await monque.stop()
console.log('esm: job completed with result 5; the dashboard and its API answer')
