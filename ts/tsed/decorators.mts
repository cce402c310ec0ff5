// @Job, @JobController, @Cron and @Every: they only record what to register;
// MonqueModule registers the workers and schedules when the injector starts.
import { Injectable, ProviderScope } from '@tsed/di'
import type { ScheduleOptions, WorkerOptions } from 'monque'

/** Provider types the module looks for. */
export const JOB_PROVIDER = 'monque:job'
export const CONTROLLER_PROVIDER = 'monque:controller'

export interface JobOptions extends WorkerOptions {
  /** The job name. For a method of a `@JobController(namespace)`: `namespace.name`. */
  name?: string
  /**
   * DI scope of a `@Job` / `@Cron` / `@Every` class. Default singleton, as everywhere in
   * Ts.ED; `ProviderScope.REQUEST` builds it for every job (then `inject(MONQUE_JOB)` works).
   */
  scope?: ProviderScope
}

export interface JobControllerOptions {
  /** DI scope of the controller. Default singleton; `ProviderScope.REQUEST`: one instance per job. */
  scope?: ProviderScope
}

export interface CronOptions extends JobOptions, Omit<ScheduleOptions, 'uniqueKey'> {
  /** Data each run receives. Default `{}`. */
  data?: unknown
  /** Tells several schedules of one job apart. Default: one schedule per job name. */
  uniqueKey?: string
}

/** `@Every` takes the schedule options but a timezone (intervals have none). */
export type EveryOptions = Omit<CronOptions, 'timezone'>

/** A schedule: a cron pattern or a fixed interval (see `Monque.schedule` / `Monque.every`). */
export type Repeat = ({ cron: string } | { every: number | string }) & { options: ScheduleOptions; data: unknown }

/** One worker (and maybe one schedule) a decorated class or method stands for. */
export interface JobEntry {
  target: new (...args: any[]) => any
  method: string
  name: string
  worker: WorkerOptions
  repeat?: Repeat
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
    if (entry.repeat) same.repeat = entry.repeat
    if (!entry.repeat || entry.name !== entry.method) same.name = entry.name
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
  if (options.groupConcurrency !== undefined) worker.groupConcurrency = options.groupConcurrency
  if (options.groupLimiter !== undefined) worker.groupLimiter = options.groupLimiter
  return worker
}

type Decorator = (target: any, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => any

const scopes = new WeakMap<object, ProviderScope>()

/**
 * Registers a decorated class as a provider the module finds: singleton unless a
 * decorator asked otherwise (a scope given to `@Job` survives a `@Cron` on the class).
 */
function provide(target: any, type: string, scope: ProviderScope | undefined): void {
  if (scope !== undefined) scopes.set(target, scope)
  Injectable({ type, scope: scopes.get(target) ?? ProviderScope.SINGLETON })(target)
}

/** Records a class-level (`handle`) or method-level entry. */
function record(what: string, options: JobOptions, repeat: Repeat | undefined): Decorator {
  return (target, propertyKey) => {
    if (propertyKey === undefined) {
      if (!options.name) throw new TypeError(`${what} on a class needs a name`)
      add(target, { target, method: 'handle', name: options.name, worker: split(options), ...(repeat && { repeat }) })
      provide(target, JOB_PROVIDER, options.scope)
      return
    }
    const method = String(propertyKey)
    const entry: JobEntry = { target: target.constructor, method, name: options.name ?? method, worker: split(options), onMethod: true }
    if (repeat) entry.repeat = repeat
    add(target.constructor, entry)
  }
}

/**
 * On a class: the class is a job whose `handle(job)` runs each job of `name`.
 * On a method of a `@JobController` class: the method runs the jobs of `name`.
 * Handlers are resolved through the injector for every job (see run.mts).
 */
export function Job(nameOrOptions: string | JobOptions, options: JobOptions = {}): Decorator {
  return record('@Job', typeof nameOrOptions === 'string' ? { ...options, name: nameOrOptions } : nameOrOptions, undefined)
}

function scheduleOptions(options: CronOptions): ScheduleOptions {
  const schedule: ScheduleOptions = {}
  if (options.timezone !== undefined) schedule.timezone = options.timezone
  if (options.uniqueKey !== undefined) schedule.uniqueKey = options.uniqueKey
  if (options.priority !== undefined) schedule.priority = options.priority
  if (options.group !== undefined) schedule.group = options.group
  return schedule
}

/**
 * Runs the job on a cron schedule (see `Monque.schedule`), registered idempotently on
 * every start. On a class (with `options.name`) or on a `@JobController` method.
 */
export function Cron(pattern: string, options: CronOptions = {}): Decorator {
  return record('@Cron', options, { cron: pattern, options: scheduleOptions(options), data: options.data ?? {} })
}

/**
 * Runs the job every `interval` (ms, or a string such as `'5 minutes'`; see
 * `Monque.every`), registered idempotently on every start. Where `@Cron` goes.
 */
export function Every(interval: number | string, options: EveryOptions = {}): Decorator {
  return record('@Every', options, { every: interval, options: scheduleOptions(options), data: options.data ?? {} })
}

/** A class whose `@Job` / `@Cron` / `@Every` methods handle jobs named `namespace.<name>`. */
export function JobController(namespace?: string, options: JobControllerOptions = {}): Decorator {
  return (target) => {
    namespaces.set(target, namespace)
    provide(target, CONTROLLER_PROVIDER, options.scope)
  }
}
