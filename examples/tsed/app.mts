// A Ts.ED application using monque: type-checked by `npm run build`.
// Run it inside your Ts.ED server; the module starts processing once the server is ready.
import { Configuration, Injectable, inject, ProviderScope } from '@tsed/di'
import { Cron, currentJob, Job, JobController, MonqueService } from 'monque/tsed'
import type { RunningJob } from 'monque'

@Configuration({
  monque: {
    connection: process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/app', // or a Db, or a Mongoose connection
    // mongooseConnectionId: 'default',  // or take it from @tsed/mongoose
    workerConcurrency: 10,
    jobRetention: { completed: 7 * 86_400_000 },
  },
})
export class Server {}

@Injectable()
export class Mailer {
  async send(to: string, subject: string): Promise<void> {
    console.log(`mail to ${to}: ${subject}`)
  }
}

/** A fresh instance for every job (request scope). */
@Injectable({ scope: ProviderScope.REQUEST })
export class AuditTrail {
  readonly entries: string[] = []
}

/** A job class: `handle` runs each `send-welcome` job, resolved through the injector. */
@Job('send-welcome', { concurrency: 5 })
export class SendWelcomeJob {
  private readonly mailer = inject(Mailer)
  private readonly audit = inject(AuditTrail)

  async handle(job: RunningJob<{ to: string }>): Promise<void> {
    this.audit.entries.push(`welcome ${job.data.to}`)
    await this.mailer.send(job.data.to, 'Welcome!')
  }
}

/** Method handlers, as with @tsed/bullmq and @tsed/agenda: jobs `reports.<name>`. */
@JobController('reports')
export class ReportJobs {
  private readonly mailer = inject(Mailer)

  @Cron('0 6 * * 1-5', { timezone: 'Europe/Berlin' }) // reports.daily, idempotent across restarts
  async daily(): Promise<void> {
    await this.mailer.send('ops@example.com', `daily report (job ${currentJob()?.id})`)
  }

  @Job('adhoc')
  async adhoc(job: RunningJob<{ range: string }>): Promise<void> {
    await this.mailer.send('ops@example.com', `report for ${job.data.range}`)
  }
}

/** Anywhere else: enqueue, schedule and manage through MonqueService. */
@Injectable()
export class SignupService {
  private readonly monque = inject(MonqueService)

  async signedUp(email: string): Promise<void> {
    await this.monque.enqueue('send-welcome', { to: email }, { uniqueKey: `welcome:${email}` })
    const stats = await this.monque.queue.getQueueStats({ name: 'send-welcome' })
    console.log(stats.pending)
  }
}
