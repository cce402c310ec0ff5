// The queue's events through Ts.ED's logger: one `key=value` line per event (log
// shippers and terminals both read it), a failed job's stack on the lines after it.
import { logger as tsedLogger } from '@tsed/di'
import type { Logger } from 'monque'

type Level = 'debug' | 'info' | 'warn' | 'error'

/** Errors handlers threw, by job id, until their `job:fail` line is written. */
const thrown = new Map<string, Error>()
/** Bounded: a thrown error whose failure is never reported (handed back at shutdown) must not pile up. */
const MAX_THROWN = 200

/** Keeps what a handler threw so the failure's log line can show its stack. */
export function rememberThrown(jobId: string, error: unknown): void {
  if (!(error instanceof Error)) return
  thrown.delete(jobId)
  thrown.set(jobId, error)
  if (thrown.size > MAX_THROWN) thrown.delete(thrown.keys().next().value!)
}

/** The `logger` option for the core: Ts.ED's logger (the injector's, as configured). */
export function tsedEventLogger(): Logger {
  const target = tsedLogger() as unknown as Record<Level, (...data: unknown[]) => void>
  const at = (level: Level) => (fields: Record<string, unknown>, message: string) => {
    const { stack: given, ...rest } = fields
    let stack = typeof given === 'string' ? given : undefined
    if (fields.event === 'job:fail' && typeof fields.jobId === 'string') {
      stack ??= thrown.get(fields.jobId)?.stack
      thrown.delete(fields.jobId)
    }
    let line = `monque: ${message}${formatFields(rest)}`
    if (stack) line += `\n${stack.replace(/^/gm, '    ')}`
    target[level]?.call(target, line)
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** ` key=value key="two words"`; undefined fields are left out. */
export function formatFields(fields: Record<string, unknown>): string {
  let out = ''
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue
    out += ` ${key}=${formatValue(value)}`
  }
  return out
}

function formatValue(value: unknown): string {
  if (value instanceof Date) return value.toISOString()
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value)
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)
}
