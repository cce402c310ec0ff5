// MonqueService: inject it in controllers and services to enqueue, schedule and manage.
import { Injectable } from '@tsed/di'
import { Monque, MonqueError } from 'monque'
import type { EnqueueOptions, Job, JobId, ScheduleOptions } from 'monque'

@Injectable()
export class MonqueService {
  #queue?: Monque

  /** The queue (every method of `Monque`). Throws until MonqueModule has started. */
  get queue(): Monque {
    if (!this.#queue) throw new MonqueError('NOT_INITIALIZED', 'monque is not initialized: is MonqueModule loaded and `monque` configured?')
    return this.#queue
  }

  #ready?: Promise<Monque | undefined>

  /**
   * Connects and registers everything once; resolves with the queue (undefined when
   * `monque.enabled` is false). MonqueModule calls it in `$onInit`; other providers'
   * `$onInit` may await it too, whatever order Ts.ED runs them in.
   */
  ready(): Promise<Monque | undefined> {
    this.#ready ??= import('./module.mjs').then(async ({ createQueue }) => {
      this.#queue = await createQueue()
      return this.#queue
    })
    return this.#ready
  }

  /** The queue once ready; NOT_INITIALIZED when the module is disabled. */
  private async live(): Promise<Monque> {
    await this.ready()
    return this.queue
  }

  /** Starts processing now (processes without an HTTP server emit no `$onReady`). */
  async start(): Promise<void> {
    ;(await this.ready())?.start()
  }

  /** @internal Graceful stop, from MonqueModule's `$onDestroy`. */
  async close(): Promise<void> {
    const queue = this.#queue
    this.#queue = undefined
    this.#ready = undefined
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
