// @Job, @JobController and @Cron: they only record what to register; MonqueModule
// registers the workers and schedules when the injector starts.
import { Injectable, ProviderScope } from '@tsed/di'
import type { ScheduleOptions, WorkerOptions } from 'monque'

/** Provider types the module looks for. */
export const JOB_PROVIDER = 'monque:job'
export const CONTROLLER_PROVIDER = 'monque:controller'

export interface JobOptions extends WorkerOptions {
  /** The job name. For a method of a `@JobController(namespace)`: `namespace.name`. */
  name?: string
}

export interface CronOptions extends JobOptions, Omit<ScheduleOptions, 'uniqueKey'> {
  /** Data each run receives. Default `{}`. */
  data?: unknown
  /** Tells several schedules of one job apart. Default: one schedule per job name. */
  uniqueKey?: string
}

/** One worker (and maybe one schedule) a decorated class or method stands for. */
export interface JobEntry {
  target: new (...args: any[]) => any
  method: string
  name: string
  worker: WorkerOptions
  cron?: { pattern: string; options: ScheduleOptions; data: unknown }
  /** Declared on a method (named within its controller's namespace). */
  onMethod?: boolean
}

const entries = new WeakMap<object, JobEntry[]>()
const namespaces = new WeakMap<object, string | undefined>()

/** What the decorators recorded for a provider class. */
export function jobEntries(target: object): JobEntry[] {
  const namespace = namespaces.get(target)
  return (entries.get(target) ?? []).map((e) => ({
    ...e,
    name: namespace && e.onMethod ? `${namespace}.${e.name}` : e.name,
  }))
}

/** Records an entry; `@Job` and `@Cron` on one method make one entry. */
function add(target: any, entry: JobEntry): void {
  const list = entries.get(target) ?? []
  const same = list.find((e) => e.method === entry.method)
  if (same) {
    if (entry.cron) same.cron = entry.cron
    if (!entry.cron || entry.name !== entry.method) same.name = entry.name
    same.worker = { ...same.worker, ...entry.worker }
  } else {
    list.push(entry)
  }
  entries.set(target, list)
}

function split(options: JobOptions): WorkerOptions {
  const worker: WorkerOptions = {}
  if (options.concurrency !== undefined) worker.concurrency = options.concurrency
  if (options.maxRetries !== undefined) worker.maxRetries = options.maxRetries
  if (options.timeout !== undefined) worker.timeout = options.timeout
  if (options.limiter !== undefined) worker.limiter = options.limiter
  return worker
}

type Decorator = (target: any, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => any

/**
 * On a class: the class is a job whose `handle(job)` runs each job of `name`.
 * On a method of a `@JobController` class: the method runs the jobs of `name`.
 * Handlers are resolved through the injector for every job (see MonqueModule).
 */
export function Job(nameOrOptions: string | JobOptions, options: JobOptions = {}): Decorator {
  const opts: JobOptions = typeof nameOrOptions === 'string' ? { ...options, name: nameOrOptions } : nameOrOptions
  return (target, propertyKey) => {
    if (propertyKey === undefined) {
      if (!opts.name) throw new TypeError('@Job on a class needs a name')
      add(target, { target, method: 'handle', name: opts.name, worker: split(opts) })
      Injectable({ type: JOB_PROVIDER, scope: ProviderScope.REQUEST })(target)
      return
    }
    const method = String(propertyKey)
    add(target.constructor, { target: target.constructor, method, name: opts.name ?? method, worker: split(opts), onMethod: true })
  }
}

/**
 * Runs the job on a cron schedule (see `Monque.schedule`), registered idempotently on
 * every start. On a class (with `options.name`) or on a `@JobController` method.
 */
export function Cron(pattern: string, options: CronOptions = {}): Decorator {
  const schedule: ScheduleOptions = {}
  if (options.timezone !== undefined) schedule.timezone = options.timezone
  if (options.uniqueKey !== undefined) schedule.uniqueKey = options.uniqueKey
  if (options.priority !== undefined) schedule.priority = options.priority
  const cron = { pattern, options: schedule, data: options.data ?? {} }
  return (target, propertyKey) => {
    if (propertyKey === undefined) {
      if (!options.name) throw new TypeError('@Cron on a class needs options.name')
      add(target, { target, method: 'handle', name: options.name, worker: split(options), cron })
      Injectable({ type: JOB_PROVIDER, scope: ProviderScope.REQUEST })(target)
      return
    }
    const method = String(propertyKey)
    add(target.constructor, { target: target.constructor, method, name: options.name ?? method, worker: split(options), cron, onMethod: true })
  }
}

/** A class whose `@Job` / `@Cron` methods handle jobs named `namespace.<name>`. */
export function JobController(namespace?: string): Decorator {
  return (target) => {
    namespaces.set(target, namespace)
    Injectable({ type: CONTROLLER_PROVIDER, scope: ProviderScope.REQUEST })(target)
  }
}
