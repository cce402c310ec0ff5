// OpenTelemetry traces across the queue's hop, when the optional peer `@opentelemetry/api`
// is installed (without it, or with `telemetry: false`, nothing here runs).
//
// enqueue / enqueueMany / schedule start a PRODUCER span and store its W3C context on the
// job (`traceContext`). Each run starts a CONSUMER span that continues it: a child of the
// producer span for a one-off job (every attempt, so retries share the trace), a new
// trace linked to it for a schedule's run. A run links to the job's previous attempt
// (its span is kept in the attempts history) and the handler runs inside the span's
// context, so spans it starts nest under the run. Attributes follow the messaging
// semantic conventions.
import type * as Otel from '@opentelemetry/api'

import { MonqueError } from './errors'
import type { TelemetryOptions, TraceContext } from './types'

type Api = typeof Otel

const SYSTEM = 'monque'
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const PRINTABLE = /^[\x20-\x7e]*$/
/** The W3C limit; a longer tracestate is not stored (the trace still continues). */
const MAX_TRACESTATE = 512
export const VERSION: string = (() => {
  try {
    return (require('../package.json') as { version: string }).version
  } catch {
    return '0.0.0'
  }
})()

let loaded: Api | null | undefined
/** `@opentelemetry/api`, loaded once; null when it is not installed. */
export function otelApi(): Api | null {
  if (loaded === undefined) {
    try {
      loaded = require('@opentelemetry/api') as Api
    } catch {
      loaded = null
    }
  }
  return loaded
}

/**
 * The W3C context of `span`, if it has a valid one. Ids are lowercased (the API accepts
 * uppercase ones, as some propagators write them; the W3C format does not); a context the
 * core would refuse is not stored, so tracing never fails an enqueue.
 */
function contextOf(api: Api, span: Otel.Span): TraceContext | undefined {
  const sc = span.spanContext()
  if (!api.isSpanContextValid(sc)) return undefined
  const traceparent = `00-${sc.traceId.toLowerCase()}-${sc.spanId.toLowerCase()}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`
  if (!TRACEPARENT.test(traceparent)) return undefined
  const tracestate = sc.traceState?.serialize()
  return tracestate && tracestate.length <= MAX_TRACESTATE && PRINTABLE.test(tracestate) ? { traceparent, tracestate } : { traceparent }
}

/** A remote span context from a stored traceparent (and tracestate). */
function remote(api: Api, traceparent: unknown, tracestate?: unknown): Otel.SpanContext | undefined {
  const m = typeof traceparent === 'string' ? TRACEPARENT.exec(traceparent) : null
  if (!m) return undefined
  const sc: Otel.SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16), isRemote: true }
  if (typeof tracestate === 'string' && tracestate) sc.traceState = api.createTraceState(tracestate)
  return api.isSpanContextValid(sc) ? sc : undefined
}

export class Tracing {
  private constructor(
    private readonly api: Api,
    private readonly tracer: Otel.Tracer,
  ) {}

  /** Tracing for a queue, or undefined when it is off (`telemetry: false` or no API installed). */
  static create(options: TelemetryOptions | false | undefined): Tracing | undefined {
    if (options === false) return undefined
    const api = otelApi()
    if (!api) return undefined
    const provider = (options?.tracerProvider as Otel.TracerProvider | undefined) ?? api.trace.getTracerProvider()
    return new Tracing(api, provider.getTracer('monque', VERSION))
  }

  /**
   * Runs `send` (an enqueue or a schedule) inside a producer span. `send` receives the
   * context to store on the job(s); `idOf` names the job written, when there is one.
   */
  async produce<R>(
    operation: 'enqueue' | 'schedule',
    name: string | undefined,
    count: number,
    send: (context: TraceContext | undefined) => Promise<R>,
    idOf?: (result: R) => string | undefined,
  ): Promise<R> {
    const { api } = this
    const attributes: Otel.Attributes = {
      'messaging.system': SYSTEM,
      'messaging.operation.type': 'send',
      'messaging.operation.name': operation,
    }
    if (name !== undefined) attributes['messaging.destination.name'] = name
    if (count > 1) attributes['messaging.batch.message_count'] = count
    const span = this.tracer.startSpan(name === undefined ? operation : `${operation} ${name}`, { kind: api.SpanKind.PRODUCER, attributes })
    if (!span.isRecording()) {
      // No SDK, or not sampled: nothing to record. A valid context (a sampled-out trace)
      // is still carried, so the runs keep the sampling decision.
      span.end()
      return send(contextOf(api, span))
    }
    try {
      const result = await api.context.with(api.trace.setSpan(api.context.active(), span), () => send(contextOf(api, span)))
      const id = idOf?.(result)
      if (id) span.setAttribute('messaging.message.id', id)
      return result
    } catch (err) {
      this.fail(span, err)
      throw err
    } finally {
      span.end()
    }
  }

  /**
   * Runs `handle` (one run of the job `raw`) inside a consumer span, told to the core at
   * once through `onSpan` (the attempts history keeps it, also for a run that times out).
   * A throw is recorded on the span unless `snoozed()` says it was a snooze. When `signal`
   * aborts, the span ends then (a timeout as an error): a handler that never settles does
   * not keep it open.
   */
  async consume<R>(
    raw: Record<string, unknown>,
    signal: AbortSignal,
    onSpan: (traceparent: string) => void,
    snoozed: () => boolean,
    handle: () => Promise<R>,
  ): Promise<R> {
    const { api } = this
    const name = String(raw.name)
    const stored = raw.traceContext as TraceContext | undefined
    const producer = stored && remote(api, stored.traceparent, stored.tracestate)
    const links: Otel.Link[] = []
    let parent = api.ROOT_CONTEXT
    if (producer && raw.repeat) links.push({ context: producer, attributes: { 'monque.link': 'schedule' } })
    else if (producer) parent = api.trace.setSpanContext(api.ROOT_CONTEXT, producer)
    // The attempt before this one, when it did not succeed (a schedule's last run did:
    // it is an earlier occurrence, not an earlier attempt).
    const attempts = raw.attempts as { traceparent?: string; outcome?: string }[] | undefined
    const last = attempts?.[attempts.length - 1]
    const previous = last && last.outcome !== 'completed' ? remote(api, last.traceparent) : undefined
    if (previous) links.push({ context: previous, attributes: { 'monque.link': 'previous-attempt' } })
    const span = this.tracer.startSpan(
      `process ${name}`,
      {
        kind: api.SpanKind.CONSUMER,
        links,
        attributes: {
          'messaging.system': SYSTEM,
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.destination.name': name,
          'messaging.message.id': String(raw.id),
          'monque.job.attempt': Number(raw.failCount ?? 0) + 1,
        },
      },
      parent,
    )
    // Kept for the next attempt's link only when recorded: without an SDK, the no-op
    // span carries its parent's context, which is not this run's.
    if (span.isRecording()) {
      const traceparent = contextOf(api, span)?.traceparent
      if (traceparent) onSpan(traceparent)
    } else if (!api.isSpanContextValid(span.spanContext())) {
      // No SDK and no trace to continue: run the handler as it is.
      span.end()
      return handle()
    }
    let ended = false
    const end = () => {
      if (!ended) span.end()
      ended = true
    }
    const aborted = () => {
      const reason = signal.reason as { code?: string } | undefined
      if (reason?.code === 'JOB_TIMEOUT') this.fail(span, reason)
      end()
    }
    signal.addEventListener('abort', aborted, { once: true })
    try {
      return await api.context.with(api.trace.setSpan(parent, span), handle)
    } catch (err) {
      if (!snoozed() && !ended) this.fail(span, err)
      throw err
    } finally {
      signal.removeEventListener('abort', aborted)
      end()
    }
  }

  private fail(span: Otel.Span, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err))
    span.recordException(error)
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: error.message })
  }
}

/** `options` with the producer span's trace context, unless they bring their own. */
export function withTrace<O extends { traceContext?: TraceContext }>(options: O, trace: TraceContext | undefined): O {
  return trace && !options.traceContext ? { ...options, traceContext: trace } : options
}

/** A caller's `traceContext` option: its shape here, its format in the core. */
export function checkTraceContext(tc: unknown): TraceContext | undefined {
  if (tc === undefined) return undefined
  const t = tc as TraceContext | null
  if (t === null || typeof t !== 'object' || typeof t.traceparent !== 'string' || (t.tracestate !== undefined && typeof t.tracestate !== 'string')) {
    throw new MonqueError('INVALID_OPTION', 'traceContext must be { traceparent: string, tracestate?: string }')
  }
  return { traceparent: t.traceparent, tracestate: t.tracestate }
}
