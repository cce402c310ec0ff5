// A complete Ts.ED 8 app: `npm run example:tsed`, then
//   curl -X POST localhost:8083/signups -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
import '@tsed/mongoose' // registers MongooseModule: the `mongoose` block below
import '@tsed/platform-express'
import { Configuration, Controller, Injectable, inject } from '@tsed/di'
import { PlatformExpress } from '@tsed/platform-express'
import { PlatformApplication } from '@tsed/platform-http'
import { BodyParams } from '@tsed/platform-params'
import { Post } from '@tsed/schema'
import type { RunningJob } from 'monque'
import { createMonqueHandler } from 'monque/http'
import { Cron, currentJob, Every, Job, JobController, MonqueModule, MonqueService } from 'monque/tsed'

const url = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/app'

@Injectable()
export class Mailer {
  async send(to: string, subject: string): Promise<void> {
    console.log(`mail to ${to}: ${subject}`)
  }
}

@Job('send-welcome', { concurrency: 5, maxRetries: 3 }) // a singleton, as any Ts.ED provider
export class SendWelcomeJob {
  private readonly mailer = inject(Mailer)
  async handle(job: RunningJob<{ to: string }>): Promise<void> {
    await this.mailer.send(job.data.to, 'Welcome!')
  }
}

@JobController('reports') // jobs named reports.<name>
export class ReportJobs {
  private readonly mailer = inject(Mailer)

  @Cron('0 6 * * 1-5', { timezone: 'Europe/Berlin' }) // one schedule, however often you deploy
  async daily(): Promise<void> {
    await this.mailer.send('ops@example.com', `daily report (job ${currentJob()?.id})`)
  }

  @Every('15 minutes')
  async refresh(): Promise<void> {}
}

@Controller('/signups')
export class SignupController {
  private readonly monque = inject(MonqueService)

  @Post('/')
  async signUp(@BodyParams('email') email: string): Promise<{ jobId: string }> {
    const job = await this.monque.enqueue('send-welcome', { to: email }, { uniqueKey: `welcome:${email}` })
    return { jobId: job.id }
  }
}

@Configuration({
  imports: [MonqueModule],
  mount: { '/': [SignupController] },
  middlewares: ['json-parser'],
  httpPort: Number(process.env.PORT ?? 8083),
  httpsPort: false,
  mongoose: [{ id: 'default', url }],
  monque: {
    mongooseConnectionId: 'default', // or: connection: url (a URI, Db or Mongoose connection)
    workerConcurrency: 10, // and every other option of `new Monque()`
    shutdownTimeout: 10_000,
  },
})
export class Server {
  private readonly app = inject(PlatformApplication)
  private readonly monque = inject(MonqueService)

  // The operators' dashboard and HTTP API at /monque/ (read-only: pass `authorize` to allow actions).
  async $afterRoutesInit(): Promise<void> {
    const queue = await this.monque.ready()
    if (queue) this.app.use('/monque', createMonqueHandler(queue))
  }
}

// SIGTERM / SIGINT: MonqueModule shuts the app down gracefully (`monque.stopOnSignals`).
const platform = await PlatformExpress.bootstrap(Server)
await platform.listen()
