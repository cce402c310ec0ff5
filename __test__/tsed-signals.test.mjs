// SIGTERM on a Ts.ED app that only bootstrap()s and listen()s: a real child process,
// a real signal, a job running at the time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

import { Monque } from '../dist/index.mjs'
import { eventually, oid, testDb, uri } from './helpers.mjs'

const app = fileURLToPath(new URL('./tsed/signal-app.mjs', import.meta.url))

/** Starts the app on its own database; resolves once it listens. */
async function startApp(t, name, env = {}) {
  const child = spawn(process.execPath, [app], { env: { ...process.env, MONQUE_DB: name, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const exited = once(child, 'exit')
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await eventually(() => output.includes('app: listening'), { within: 20_000, what: `the app to listen; output:\n${output}` })
  return { child, exited, output: () => output }
}

async function runLongJob(t, name, jobs) {
  const producer = new Monque(uri, { database: name, logger: false })
  t.after(() => producer.stop())
  const job = await producer.now('tsed:long', {})
  await eventually(async () => (await jobs.findOne({ _id: oid(job.id) })).status === 'processing', { within: 10_000, what: 'the job to run' })
  return job
}

test('SIGTERM stops the app gracefully: the running job is handed back and the process exits', async (t) => {
  const { name, jobs } = await testDb(t)
  const { child, exited, output } = await startApp(t, name)
  const job = await runLongJob(t, name, jobs)
  const sent = Date.now()
  child.kill('SIGTERM')
  const [code, signal] = await exited
  const tookMs = Date.now() - sent
  const after = await jobs.findOne({ _id: oid(job.id) })
  assert.equal(after.status, 'pending', `handed back, not left processing until its lease; output:\n${output()}`)
  assert.equal(after.failCount, 0)
  assert.ok(tookMs < 5000, `exited ${tookMs} ms after the signal`)
  assert.equal(signal, 'SIGTERM', `ends by the signal's default action (code ${code})`)
  assert.match(output(), /monque: SIGTERM received/)
})

test("an app with its own SIGTERM handler stays in charge; monque still drains through platform.stop()", async (t) => {
  const { name, jobs } = await testDb(t)
  const { child, exited, output } = await startApp(t, name, { APP_HANDLES_SIGNALS: '1' })
  const job = await runLongJob(t, name, jobs)
  child.kill('SIGTERM')
  const [code] = await exited
  assert.equal(code, 0, output())
  assert.equal((await jobs.findOne({ _id: oid(job.id) })).status, 'pending')
  assert.match(output(), /app: stopped by its own handler/)
  assert.doesNotMatch(output(), /monque: SIGTERM received/)
})
