// The `monque` key of the Ts.ED configuration.
import type { TokenProvider } from '@tsed/di'
import type { Connection, MonqueOptions } from 'monque'

export interface MonqueSettings extends MonqueOptions {
  /** Set false to load the module without connecting. Default true. */
  enabled?: boolean
  /** A MongoDB URI, a native `Db`, or a Mongoose connection. */
  connection?: Connection
  /** Take the connection from @tsed/mongoose's `MongooseService` (its connection id). */
  mongooseConnectionId?: string
  /** A DI token whose provider is the connection (a URI, `Db` or Mongoose connection). */
  dbToken?: TokenProvider
  /** Returns the connection; runs in the injector's context at `$onInit`, so it may `inject()`. */
  dbFactory?: () => Connection | Promise<Connection>
  /** Producer only: enqueue, schedule and manage, but run no jobs. Default false. */
  disableJobProcessing?: boolean
  /**
   * Signals on which a processing app shuts down gracefully (like `platform.stop()`,
   * then the signal's default action), when no other listener handles them. Default
   * `['SIGTERM', 'SIGINT']`; `false` leaves signals alone.
   */
  stopOnSignals?: NodeJS.Signals[] | false
  /**
   * Unschedule, at startup, every schedule in the queue that no @Cron / @Every of this
   * app declares (a handler removed or renamed would otherwise keep its schedule firing
   * into nothing). Default false: turn it on in the one app that owns the schedules,
   * not in apps that schedule from code or share the collection.
   */
  removeUndeclaredSchedules?: boolean
  // `logger` (from MonqueOptions): unset logs through Ts.ED's logger, one line per event.
}

declare global {
  namespace TsED {
    interface Configuration {
      monque?: MonqueSettings
    }
  }
}
