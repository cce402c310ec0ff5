// MonqueModule: connects from the `monque` configuration, registers every @Job /
// @JobController handler and @Cron / @Every schedule, starts processing once the
// server is ready and stops gracefully on shutdown (and on SIGTERM / SIGINT).
import { constant, inject, logger, Module } from '@tsed/di'
import { Monque, MonqueError } from 'monque'

import type { MonqueSettings } from './config.mjs'
import { resolveConnection } from './connection.mjs'
import type { JobEntry } from './decorators.mjs'
import { tsedEventLogger } from './logger.mjs'
import { handlerEntries, runJob } from './run.mjs'
import { MonqueService } from './service.mjs'
import { stopOnSignals } from './signals.mjs'

@Module()
export class MonqueModule {
  protected readonly service = inject(MonqueService)
  #unlisten?: () => void

  /** Connects, registers handlers and schedules (shared with MonqueService.ready()). */
  async $onInit(): Promise<void> {
    await this.service.ready()
  }

  /** Processing starts once the server listens (Ts.ED emits `$onReady` after listen). */
  async $onReady(): Promise<void> {
    const queue = await this.service.ready()
    const settings = constant<MonqueSettings>('monque')
    if (!queue || settings?.disableJobProcessing) return
    queue.start()
    const signals = settings?.stopOnSignals ?? ['SIGTERM', 'SIGINT']
    if (signals) this.#unlisten = stopOnSignals(signals)
    void logStarted(queue)
  }

  /** Graceful stop: waits `shutdownTimeout`, then hands unfinished jobs back. */
  async $onDestroy(): Promise<void> {
    this.#unlisten?.()
    await this.service.close()
  }
}

/** Queues built from the app's `Db` / Mongoose connection: their pool is a second one. */
const besideAppClient = new WeakSet<Monque>()

/** Builds the queue from the `monque` settings; undefined when the module is disabled. */
export async function createQueue(): Promise<Monque | undefined> {
  const settings = constant<MonqueSettings>('monque')
  if (!settings || settings.enabled === false) return undefined
  const {
    enabled: _e, connection: _c, mongooseConnectionId: _m, dbToken: _t, dbFactory: _f,
    disableJobProcessing: _d, stopOnSignals: _s, removeUndeclaredSchedules: _r, ...options
  } = settings
  // Unset: Ts.ED's logger. An explicit logger (or `false`) is used as given.
  if (!('logger' in settings) || settings.logger === undefined) options.logger = tsedEventLogger()
  const connection = await resolveConnection(settings)
  const queue = new Monque(connection, options)
  if (typeof connection !== 'string') besideAppClient.add(queue)
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
    for (const { name, repeat } of entries) {
      if (!repeat) continue
      if ('cron' in repeat) await queue.schedule(repeat.cron, name, repeat.data, repeat.options)
      else await queue.every(repeat.every, name, repeat.data, repeat.options)
    }
    if (settings.removeUndeclaredSchedules) await removeUndeclared(queue, entries)
  } catch (err) {
    await queue.stop()
    throw err
  }
  return queue
}

/** Unschedules what no @Cron / @Every declares; says so in the log, one line each. */
async function removeUndeclared(queue: Monque, entries: JobEntry[]): Promise<void> {
  const declared = new Set(
    entries.flatMap(({ name, repeat }) => (repeat ? [`${name}\u0000${repeat.options.uniqueKey ?? `schedule:${name}`}`] : [])),
  )
  for (const schedule of await queue.listSchedules()) {
    const key = schedule.uniqueKey ?? `schedule:${schedule.name}`
    if (declared.has(`${schedule.name}\u0000${key}`)) continue
    await queue.unschedule(schedule.name, key)
    logger().warn(`monque: removed schedule name=${schedule.name} uniqueKey=${key}: no @Cron or @Every declares it any more`)
  }
}

/**
 * The startup line, once the change stream is up (it takes a few ms) or clearly not
 * coming: `notify=polling` should mean polling.
 */
async function logStarted(queue: Monque): Promise<void> {
  const log = logger()
  for (let waited = 0; queue.notifyMode === 'polling' && waited < 1000; waited += 25) {
    await new Promise((resolve) => setTimeout(resolve, 25).unref())
  }
  log.info(`monque: started${startupSummary(queue, handlerEntries())}`)
}

/** ` workers=… schedules=… notify=…`: what this instance runs, in one line. */
export function startupSummary(queue: Monque, entries: JobEntry[]): string {
  const workers = entries.map((e) => (e.worker.concurrency ? `${e.name}×${e.worker.concurrency}` : e.name))
  const schedules = entries.flatMap(({ name, repeat }) => {
    if (!repeat) return []
    return ['cron' in repeat ? `${name}@"${repeat.cron}"${repeat.options.timezone ? `(${repeat.options.timezone})` : ''}` : `${name}@every ${repeat.every}`]
  })
  // A Db or Mongoose connection is not shared: the Rust core opens a pool of its own.
  const pool = !besideAppClient.has(queue) ? '' : ' pool="a second one, beside the app\'s MongoDB client (size: maxPoolSize)"'
  return ` workers=${workers.length}[${workers.join(',')}] schedules=${schedules.length}[${schedules.join(',')}] notify=${queue.notifyMode}${pool}`
}
