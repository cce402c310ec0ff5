import { MonqueError } from './errors'

/**
 * Encodes job data (or a handler result) as JSON, refusing what JSON would silently
 * lose or mangle. Rules (also in the README):
 * - `Date` becomes its ISO-8601 string; objects with `toJSON` use it.
 * - object properties whose value is `undefined` are left out, as in JSON.
 * - `BigInt`, functions, symbols, `NaN`/`Infinity` and circular references are
 *   refused with `INVALID_DATA`.
 */
export function encodeData(value: unknown, what = 'job data'): string {
  const seen = new Set<object>()
  const check = (v: unknown, path: string): unknown => {
    switch (typeof v) {
      case 'bigint':
        throw invalid(what, path, 'is a BigInt; pass it as a string or number')
      case 'function':
      case 'symbol':
        throw invalid(what, path, `is a ${typeof v}, which JSON cannot hold`)
      case 'number':
        if (!Number.isFinite(v)) throw invalid(what, path, `is ${v}, which JSON cannot hold`)
        return v
      case 'object': {
        if (v === null) return v
        const withToJson = v as { toJSON?: () => unknown }
        if (typeof withToJson.toJSON === 'function') return check(withToJson.toJSON(), path)
        if (seen.has(v)) throw invalid(what, path, 'is a circular reference')
        seen.add(v)
        let out: unknown
        if (Array.isArray(v)) {
          out = v.map((item, i) => (item === undefined ? null : check(item, `${path}[${i}]`)))
        } else {
          const obj: Record<string, unknown> = {}
          for (const [k, child] of Object.entries(v)) {
            if (child !== undefined) obj[k] = check(child, path ? `${path}.${k}` : k)
          }
          out = obj
        }
        seen.delete(v)
        return out
      }
      default:
        return v
    }
  }
  const checked = value === undefined ? null : check(value, '')
  return JSON.stringify(checked)
}

function invalid(what: string, path: string, why: string): MonqueError {
  return new MonqueError('INVALID_DATA', `${what}${path ? ` at ${path}` : ''} ${why}`)
}
