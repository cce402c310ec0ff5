// MonqueModule: connects from the `monque` configuration, registers every @Job /
// @JobController handler and @Cron schedule, starts processing once the server is
// ready and stops gracefully on shutdown.
import {
  constant,
  DIContext,
  inject,
  injector,
  localsContainer,
  logger,
  Module,
  runInContext,
} from '@tsed/di'
import { Monque, MonqueError } from 'monque'
import type { Connection, RunningJob } from 'monque'

import type { MonqueSettings } from './config.mjs'
import { MONQUE_JOB } from './context.mjs'
import { CONTROLLER_PROVIDER, JOB_PROVIDER, jobEntries, type JobEntry } from './decorators.mjs'
import { MonqueService } from './service.mjs'

@Module()
export class MonqueModule {
  protected readonly service = inject(MonqueService)

  /** Connects, registers handlers and schedules (shared with MonqueService.ready()). */
  async $onInit(): Promise<void> {
    await this.service.ready()
  }

  /** Processing starts once the server listens (Ts.ED emits `$onReady` after listen). */
  async $onReady(): Promise<void> {
    const queue = await this.service.ready()
    if (queue && !constant<MonqueSettings>('monque')?.disableJobProcessing) queue.start()
  }

  /** Graceful stop: waits `shutdownTimeout`, then hands unfinished jobs back. */
  async $onDestroy(): Promise<void> {
    await this.service.close()
  }
}

/** Builds the queue from the `monque` settings; undefined when the module is disabled. */
export async function createQueue(): Promise<Monque | undefined> {
  const settings = constant<MonqueSettings>('monque')
  if (!settings || settings.enabled === false) return undefined
  const { enabled: _enabled, connection: _c, mongooseConnectionId: _m, disableJobProcessing: _d, ...options } = settings
  const queue = new Monque(await resolveConnection(settings), options)
  const entries = handlerEntries()
  try {
    if (!settings.disableJobProcessing) {
      const owners = new Map<string, string>()
      for (const entry of entries) {
        const owner = `${entry.target.name}.${entry.method}`
        if (owners.has(entry.name)) {
          throw new MonqueError('WORKER_EXISTS', `job "${entry.name}" is handled by both ${owners.get(entry.name)} and ${owner}`)
        }
        if (typeof entry.target.prototype[entry.method] !== 'function') {
          throw new MonqueError('INVALID_HANDLER', `${owner} is not a method: a @Job class needs a handle(job) method`)
        }
        owners.set(entry.name, owner)
        queue.register(entry.name, (job) => runJob(entry, job), entry.worker)
      }
    }
    await queue.initialize()
    for (const entry of entries) {
      if (entry.cron) await queue.schedule(entry.cron.pattern, entry.name, entry.cron.data, entry.cron.options)
    }
  } catch (err) {
    await queue.stop()
    throw err
  }
  return queue
}

function handlerEntries(): JobEntry[] {
  const providers = [...injector().getProviders(JOB_PROVIDER), ...injector().getProviders(CONTROLLER_PROVIDER)]
  return providers.flatMap((provider) => jobEntries(provider.useClass))
}

/**
 * Runs one job in its own DI context: the handler's class is built for this job, so
 * request-scoped providers are fresh; the job is `inject(MONQUE_JOB)` / `currentJob()`.
 */
async function runJob(entry: JobEntry, job: RunningJob): Promise<unknown> {
  const $ctx = new DIContext({ id: `monque:${job.id}`, injector: injector(), logger: logger() })
  $ctx.set(MONQUE_JOB, job)
  // A new locals container for this job: request-scoped providers (the handler class
  // itself among them) are built in it, once per job, and destroyed with it. Field
  // `inject()`s read the current container, so it is made current right before the
  // (synchronous) construction, after runInContext's own awaits.
  let locals: ReturnType<typeof localsContainer> | undefined
  try {
    return await runInContext($ctx, () => {
      locals = localsContainer({ providers: [{ token: MONQUE_JOB, use: job }] })
      const instance = inject<any>(entry.target, { locals })
      return instance[entry.method](job)
    })
  } finally {
    await locals?.destroy()
    locals?.clear()
    await $ctx.destroy()
  }
}

async function resolveConnection(settings: MonqueSettings): Promise<Connection> {
  if (settings.connection !== undefined && settings.mongooseConnectionId !== undefined) {
    throw new MonqueError('INVALID_CONNECTION', 'monque: set either `connection` or `mongooseConnectionId`, not both')
  }
  if (settings.connection !== undefined) return settings.connection
  if (settings.mongooseConnectionId !== undefined) {
    let mongoose: { MongooseService: new (...args: any[]) => { get(id?: string): unknown } }
    try {
      mongoose = (await import('@tsed/mongoose')) as never
    } catch {
      throw new MonqueError('INVALID_CONNECTION', 'monque: `mongooseConnectionId` needs @tsed/mongoose installed')
    }
    const connection = inject(mongoose.MongooseService).get(settings.mongooseConnectionId)
    if (!connection) {
      throw new MonqueError('INVALID_CONNECTION', `monque: @tsed/mongoose has no connection "${settings.mongooseConnectionId}"`)
    }
    return connection as Connection
  }
  throw new MonqueError(
    'INVALID_CONNECTION',
    'monque: configure `monque.connection` (a MongoDB URI, a Db or a Mongoose connection) or `monque.mongooseConnectionId`',
  )
}
