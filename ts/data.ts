import { MonqueError } from './errors'

/**
 * Encodes job data (or a handler result) as JSON, refusing what JSON would silently
 * lose or mangle. Rules (also in the README):
 * - `Date` becomes its ISO-8601 string; objects with `toJSON` use it.
 * - object properties whose value is `undefined` are left out, as in JSON.
 * - `BigInt`, functions, symbols, `NaN`/`Infinity` and circular references are
 *   refused with `INVALID_DATA`, and so are objects JSON would store as `{}` or mangle:
 *   `Map`, `Set`, `WeakMap`, `WeakSet`, `RegExp`, `Promise`, `Error`, `ArrayBuffer`,
 *   typed arrays and `DataView`.
 * - `Buffer` becomes `{ type: 'Buffer', data: [bytes] }` and `URL` its `href` string
 *   (their own `toJSON`).
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
        const lossy = lossyKind(v)
        if (lossy) throw invalid(what, path, `is ${/^[AEIOU]/.test(lossy) ? 'an' : 'a'} ${lossy}, which JSON would store as ${lossy === 'typed array' ? 'numbered keys' : '{}'}; ${convert(lossy)}`)
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

/** What kind of object JSON would silently empty or mangle, if `v` is one. */
function lossyKind(v: object): string | undefined {
  if (v instanceof Map) return 'Map'
  if (v instanceof Set) return 'Set'
  if (v instanceof WeakMap) return 'WeakMap'
  if (v instanceof WeakSet) return 'WeakSet'
  if (v instanceof RegExp) return 'RegExp'
  if (v instanceof Promise) return 'Promise'
  if (v instanceof Error) return 'Error'
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return 'ArrayBuffer'
  if (v instanceof DataView) return 'DataView'
  if (ArrayBuffer.isView(v)) return 'typed array'
  return undefined
}

function convert(kind: string): string {
  switch (kind) {
    case 'Map':
      return 'convert it, e.g. Object.fromEntries(map)'
    case 'Set':
      return 'convert it, e.g. [...set]'
    case 'RegExp':
      return 'store its source string'
    case 'Error':
      return 'store its message (and stack) as strings'
    case 'typed array':
    case 'ArrayBuffer':
    case 'DataView':
      return 'convert it, e.g. Array.from(bytes) or a base64 string'
    default:
      return 'store plain data instead'
  }
}
