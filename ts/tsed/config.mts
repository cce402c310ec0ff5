// The `monque` key of the Ts.ED configuration.
import type { Connection, MonqueOptions } from 'monque'

export interface MonqueSettings extends MonqueOptions {
  /** Set false to load the module without connecting. Default true. */
  enabled?: boolean
  /** A MongoDB URI, a native `Db`, or a Mongoose connection. */
  connection?: Connection
  /** Take the connection from @tsed/mongoose's `MongooseService` (its connection id). */
  mongooseConnectionId?: string
  /** Producer only: enqueue, schedule and manage, but run no jobs. Default false. */
  disableJobProcessing?: boolean
}

declare global {
  namespace TsED {
    interface Configuration {
      monque?: MonqueSettings
    }
  }
}
