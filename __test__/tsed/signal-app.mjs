// A small Ts.ED app for the SIGTERM test: bootstrap() and listen(), nothing else
// (APP_HANDLES_SIGNALS=1 adds the app's own `platform.stop()` handler instead).
import { Configuration } from '@tsed/di'
import { PlatformExpress } from '@tsed/platform-express'
import { Job, MonqueModule } from 'monque/tsed'

/** Runs until its signal aborts (the shutdown timeout), then fails with that reason. */
class LongJob {
  async handle(job) {
    await new Promise((resolve) => job.signal.addEventListener('abort', resolve))
    throw job.signal.reason
  }
}
Job('tsed:long')(LongJob)

class Server {}
Configuration({
  imports: [MonqueModule],
  httpPort: '127.0.0.1:0',
  httpsPort: false,
  logger: { level: 'info', disableRoutesSummary: true },
  monque: {
    connection: process.env.MONGODB_URI,
    database: process.env.MONQUE_DB,
    pollInterval: 50,
    shutdownTimeout: 300,
  },
})(Server)

const platform = await PlatformExpress.bootstrap(Server)
await platform.listen()
if (process.env.APP_HANDLES_SIGNALS) {
  process.once('SIGTERM', async () => {
    await platform.stop()
    console.log('app: stopped by its own handler')
    process.exit(0)
  })
}
console.log('app: listening')
