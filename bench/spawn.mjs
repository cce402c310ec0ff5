// Forks the measured processes of the benchmarks (bench/child.mjs) and follows them.
import { fork } from 'node:child_process'
import { childEnv } from './systems.mjs'

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const wallMs = () => performance.timeOrigin + performance.now()

/** Forks a measured child; `until(type)` resolves with its next message of that type. */
export function spawn(task, opts) {
  const child = fork(new URL('./child.mjs', import.meta.url), [task, JSON.stringify(opts)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...childEnv(opts.system) },
  })
  const progress = { handled: 0, at: Date.now() }
  const waiting = new Map()
  child.on('message', (msg) => {
    if (msg.type === 'progress') {
      if (msg.handled !== progress.handled) progress.at = Date.now()
      progress.handled = msg.handled
    }
    if (msg.type === 'error') console.error(`  ${opts.system}: ${msg.error}`)
    waiting.get(msg.type)?.(msg)
  })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  return {
    progress,
    send: (msg) => child.send(msg),
    until: (type) =>
      Promise.race([
        new Promise((resolve) => waiting.set(type, resolve)),
        exited.then((code) => {
          throw new Error(`${opts.system} ${task} child exited (${code}) before '${type}'`)
        }),
      ]),
    kill: () => child.kill('SIGKILL'),
    exited,
  }
}

/** Waits until the children together handled `total` jobs; throws when none moved for `stallMs`. */
export async function waitHandled(children, total, stallMs) {
  for (;;) {
    const handled = children.reduce((n, c) => n + c.progress.handled, 0)
    if (handled >= total) return
    const lastMove = Math.max(...children.map((c) => c.progress.at))
    if (Date.now() - lastMove > stallMs) throw new Error(`stalled at ${handled}/${total} jobs`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
