// MonqueService: inject it in controllers and services to enqueue, schedule, manage
// and listen to the queue's events.
import { Injectable } from '@tsed/di'
import { Monque, MonqueError } from 'monque'
import type { EnqueueOptions, Job, JobId, MonqueEvents, ScheduleOptions } from 'monque'

type Listener<E extends keyof MonqueEvents> = (...args: MonqueEvents[E]) => void

/** A listener given to `on` / `once`, and the function attached to the queue for it. */
interface Subscription {
  event: keyof MonqueEvents
  listener: (...args: any[]) => void
  attached: (...args: any[]) => void
}

@Injectable()
export class MonqueService {
  #queue?: Monque
  #ready?: Promise<Monque | undefined>
  #stopped = false
  readonly #subscriptions: Subscription[] = []

  /** The queue (every method of `Monque`). Throws until MonqueModule has started, and once it stopped. */
  get queue(): Monque {
    if (this.#stopped) throw stoppedError()
    if (!this.#queue) throw new MonqueError('NOT_INITIALIZED', 'monque is not initialized yet (await monqueService.ready()), or `monque` is not configured / `enabled: false`')
    return this.#queue
  }

  /**
   * Connects and registers everything once; resolves with the queue (undefined when
   * `monque.enabled` is false). MonqueModule calls it in `$onInit`; other providers'
   * `$onInit` may await it too, whatever order Ts.ED runs them in.
   */
  ready(): Promise<Monque | undefined> {
    if (this.#stopped) return Promise.reject(stoppedError())
    this.#ready ??= import('./module.mjs').then(async ({ createQueue }) => {
      const queue = await createQueue()
      if (queue) for (const s of this.#subscriptions) queue.on(s.event, s.attached)
      this.#queue = queue
      return queue
    })
    return this.#ready
  }

  /**
   * Listens to a queue event (see `MonqueEvents`). Callable at any time, in a
   * constructor or `$onInit` too: the listener is attached as soon as the queue exists.
   */
  on<E extends keyof MonqueEvents>(event: E, listener: Listener<E>): this {
    this.#subscribe(event, listener, listener)
    return this
  }

  /** Like `on`, for the next event only. */
  once<E extends keyof MonqueEvents>(event: E, listener: Listener<E>): this {
    const attached = (...args: any[]) => {
      this.off(event, listener)
      ;(listener as (...a: any[]) => void)(...args)
    }
    this.#subscribe(event, listener, attached)
    return this
  }

  /** Removes a listener given to `on` / `once`. */
  off<E extends keyof MonqueEvents>(event: E, listener: Listener<E>): this {
    const i = this.#subscriptions.findIndex((s) => s.event === event && s.listener === listener)
    if (i >= 0) {
      const [s] = this.#subscriptions.splice(i, 1)
      this.#queue?.off(s!.event, s!.attached)
    }
    return this
  }

  #subscribe(event: keyof MonqueEvents, listener: (...args: any[]) => void, attached: (...args: any[]) => void): void {
    this.#subscriptions.push({ event, listener, attached })
    this.#queue?.on(event, attached)
  }

  /** The queue once ready; NOT_INITIALIZED when the module is disabled, QUEUE_STOPPED after shutdown. */
  private async live(): Promise<Monque> {
    await this.ready()
    return this.queue
  }

  /** Starts processing now (processes without an HTTP server emit no `$onReady`). */
  async start(): Promise<void> {
    ;(await this.ready())?.start()
  }

  /** @internal Graceful stop, from MonqueModule's `$onDestroy`. Later calls fail with QUEUE_STOPPED. */
  async close(): Promise<void> {
    const ready = this.#ready
    this.#stopped = true
    this.#queue = undefined
    const queue = await ready?.catch(() => undefined)
    await queue?.stop()
  }

  async enqueue<T>(name: string, data: T, options?: EnqueueOptions): Promise<Job<T>> {
    return (await this.live()).enqueue(name, data, options)
  }

  async now<T>(name: string, data: T): Promise<Job<T>> {
    return (await this.live()).now(name, data)
  }

  async schedule<T>(cron: string, name: string, data?: T, options?: ScheduleOptions): Promise<Job<T>> {
    return (await this.live()).schedule(cron, name, data, options)
  }

  async every<T>(interval: number | string, name: string, data?: T, options?: ScheduleOptions): Promise<Job<T>> {
    return (await this.live()).every(interval, name, data, options)
  }

  async unschedule(name: string, uniqueKey?: string): Promise<boolean> {
    return (await this.live()).unschedule(name, uniqueKey)
  }

  async getJob<T = unknown>(id: JobId): Promise<Job<T> | null> {
    return (await this.live()).getJob<T>(id)
  }

  async cancelJob(id: JobId): Promise<Job> {
    return (await this.live()).cancelJob(id)
  }

  async metrics(): Promise<string> {
    return (await this.live()).metrics()
  }
}

function stoppedError(): MonqueError {
  return new MonqueError('QUEUE_STOPPED', 'monque is stopped: the Ts.ED app shut down (platform.stop() / $onDestroy ran); nothing more can be enqueued or managed through it')
}
