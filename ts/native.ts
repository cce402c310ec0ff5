// The napi-rs loader (generated at the package root by `napi build`) picks the
// binary for this platform and names it in its error when none fits.
import * as native from '../index.js'

export type NativeQueue = native.NativeQueue
export const { connect, validateJobName } = native
