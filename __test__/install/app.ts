// A user's TypeScript file, type-checked (not run) against the published declarations.
import { Monque, MonqueError, UnrecoverableError, type Job, type RunningJob, type QueueStats } from 'monque'

interface Email {
  to: string
}

export async function main(uri: string): Promise<QueueStats> {
  const monque = new Monque(uri, { database: 'app', maxRetries: 5, shutdownTimeout: 10_000 })
  monque.register<Email>(
    'send-email',
    async (job: RunningJob<Email>) => {
      if (!job.data.to.includes('@')) throw new UnrecoverableError('bad address')
      await job.updateProgress({ step: 'sending' })
      if (job.signal.aborted) return undefined
      return { delivered: job.data.to }
    },
    { concurrency: 10, timeout: 30_000 },
  )
  monque.on('job:fail', ({ job, error, willRetry }) => console.log(job.name, error.message, willRetry))
  monque.on('job:complete', ({ job, duration }) => console.log(job.id, duration))
  await monque.initialize()
  monque.start()
  const job: Job<Email> = await monque.enqueue<Email>('send-email', { to: 'ada@example.com' }, { uniqueKey: 'welcome:ada', priority: 5 })
  await monque.schedule('0 9 * * 1-5', 'digest', {}, { timezone: 'Europe/Berlin' })
  try {
    await monque.cancelJob(job.id)
  } catch (err) {
    if (err instanceof MonqueError && err.code === 'INVALID_TRANSITION') console.log('already running')
  }
  const stats = await monque.getQueueStats({ name: 'send-email' })
  await monque.stop({ timeout: 5_000 })
  return stats
}
