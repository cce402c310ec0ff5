// The napi-rs loader (generated at the package root by `napi build`) picks the
// binary for this platform: a `.node` file next to it (a source checkout) or the
// per-platform package npm installed from `optionalDependencies`. Its own error
// blames npm; ours names the platform and the package that would fit.
import type * as Native from '../index.js'
import { MonqueError } from './errors'

export type NativeQueue = Native.NativeQueue

/** Resolves to the connected queue, connecting on first use. */
export type QueueHandle = () => Promise<NativeQueue>

/** The napi-rs name of this platform, as in the `monque-<platform>` package names. */
export function platformTag(): string {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  return `${platform}-${arch}`
}

function isMusl(): boolean {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return !report?.header?.glibcVersionRuntime
}

function supportedPackages(): string[] {
  const manifest = require('../package.json') as { optionalDependencies?: Record<string, string> }
  return Object.keys(manifest.optionalDependencies ?? {})
}

function load(): typeof Native {
  try {
    return require('../index.js') as typeof Native
  } catch (err) {
    const wanted = `monque-${platformTag()}`
    const supported = supportedPackages()
    const why = supported.includes(wanted)
      ? `the package ${wanted} is not installed (npm skips optional dependencies with --omit=optional or --no-optional; reinstall without it)`
      : `monque publishes no binary for it; supported: ${supported.map((p) => p.replace(/^monque-/, '')).join(', ')}`
    throw new MonqueError(
      'NATIVE_BINDING_UNAVAILABLE',
      `monque cannot load its native binary for ${platformTag()}: ${why}.`,
      { cause: err },
    )
  }
}

const native = load()
export const { connect, validateJobName } = native
