// One measured process, forked by run.mjs: `node child.mjs <task> <json options>`.
// Tasks:
//   enqueue   enqueue `count` jobs, one at a time (`inFlight` at once) or in batches
//   worker    handle jobs from `go` until the parent says `stop`; reports its count,
//             CPU seconds from `go` to its last job, and peak RSS
//   latency   idle workers; the parent (or this process, with `self`) enqueues one job
//             every `everyMs`; reports enqueue-to-handler-start latencies
import { enqueueEach, systems } from './systems.mjs'

const [task, json] = process.argv.slice(2)
const opts = JSON.parse(json)
const wallMs = () => performance.timeOrigin + performance.now()
const send = (msg) => process.send(msg)
const nextMessage = (type) =>
  new Promise((resolve) => {
    const on = (msg) => {
      if (msg.type !== type) return
      process.off('message', on)
      resolve(msg)
    }
    process.on('message', on)
  })

const queue = await systems[opts.system](opts)

if (task === 'enqueue') {
  const { count, inFlight, batch } = opts
  if (batch && !queue.enqueueMany) {
    send({ type: 'result', jobsPerSecond: null })
    await queue.close()
    process.exit(0)
  }
  const t0 = performance.now()
  if (batch) {
    for (let i = 0; i < count; i += batch) {
      const size = Math.min(batch, count - i)
      await queue.enqueueMany(Array.from({ length: size }, (_, k) => ({ i: i + k })))
    }
  } else {
    await enqueueEach(queue, count, inFlight)
  }
  send({ type: 'result', jobsPerSecond: count / ((performance.now() - t0) / 1000) })
} else if (task === 'worker') {
  let handled = 0
  let lastAt = 0
  let cpuAtGo
  let cpuAtLast = process.cpuUsage()
  queue.work(async () => {
    handled++
    lastAt = wallMs()
    cpuAtLast = process.cpuUsage()
  })
  send({ type: 'ready' })
  await nextMessage('go')
  cpuAtGo = process.cpuUsage()
  queue.start()
  const report = setInterval(() => send({ type: 'progress', handled }), 50)
  await nextMessage('stop')
  clearInterval(report)
  const cpu = process.cpuUsage(cpuAtGo)
  const busy = handled ? { user: cpuAtLast.user - cpuAtGo.user, system: cpuAtLast.system - cpuAtGo.system } : cpu
  send({
    type: 'result',
    handled,
    lastAt,
    cpuSeconds: (busy.user + busy.system) / 1e6,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  })
} else if (task === 'latency') {
  const latencies = []
  queue.work(async (data) => {
    latencies.push(wallMs() - data.t)
  })
  queue.start()
  // Let the workers settle into idle (connections open, change streams up).
  await new Promise((r) => setTimeout(r, 1000))
  send({ type: 'ready' })
  const report = setInterval(() => send({ type: 'progress', handled: latencies.length }), 50)
  if (opts.self) {
    for (let i = 0; i < opts.count; i++) {
      await new Promise((r) => setTimeout(r, opts.everyMs))
      queue.enqueue({ i, t: wallMs() }).catch((e) => send({ type: 'error', error: String(e) }))
    }
  }
  await nextMessage('stop')
  clearInterval(report)
  send({ type: 'result', latencies })
}

await queue.close()
process.exit(0)
