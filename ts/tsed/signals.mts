// Graceful shutdown on SIGTERM / SIGINT for apps that only `bootstrap()` and
// `listen()`: Node's default action would kill the process with jobs `processing`
// until their lease expires. Apps that handle the signal themselves (Ts.ED's CLI
// template calls `platform.stop()` on SIGINT) stay in charge.
import { Server as HttpServer } from 'node:http'
import { Server as HttpsServer } from 'node:https'

import { destroyInjector, injector, logger } from '@tsed/di'

/** Listens for `signals`; returns the function that stops listening. */
export function stopOnSignals(signals: readonly NodeJS.Signals[]): () => void {
  const listeners = signals.map((signal) => {
    const listener = () => void onSignal(signal, listener, remove)
    // First in line, so every other listener is still counted when it runs.
    process.prependListener(signal, listener)
    return [signal, listener] as const
  })
  function remove() {
    for (const [signal, listener] of listeners) process.off(signal, listener)
  }
  return remove
}

async function onSignal(signal: NodeJS.Signals, self: () => void, remove: () => void): Promise<void> {
  if (process.listeners(signal).some((l) => l !== self)) return
  remove()
  logger().info(`monque: ${signal} received: stopping the app gracefully (running jobs finish or go back to pending)`)
  try {
    // What `platform.stop()` does, the HTTP servers first so no new request arrives
    // while the injector is torn down.
    for (const token of [HttpServer, HttpsServer]) {
      const server = injector().get<HttpServer | null>(token)
      server?.close()
      server?.closeIdleConnections?.()
    }
    await destroyInjector()
  } catch (err) {
    logger().error(`monque: graceful stop failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  }
  // Now the signal's default action (exit), as without this module.
  process.kill(process.pid, signal)
}
