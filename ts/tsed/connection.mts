// Where the module's connection comes from: exactly one of `connection`,
// `mongooseConnectionId`, `dbToken` or `dbFactory`.
import { inject } from '@tsed/di'
import { MonqueError } from 'monque'
import type { Connection } from 'monque'

import type { MonqueSettings } from './config.mjs'

const SOURCES = ['connection', 'mongooseConnectionId', 'dbToken', 'dbFactory'] as const

/** The configured connection; INVALID_CONNECTION when none or several are set. */
export async function resolveConnection(settings: MonqueSettings): Promise<Connection> {
  const given = SOURCES.filter((key) => settings[key] !== undefined)
  if (given.length > 1) {
    throw new MonqueError('INVALID_CONNECTION', `monque: set one of ${given.map((k) => `\`${k}\``).join(', ')}, not both`)
  }
  switch (given[0]) {
    case 'connection':
      return settings.connection!
    case 'mongooseConnectionId':
      return fromMongoose(settings.mongooseConnectionId!)
    case 'dbToken': {
      // Async factory providers are resolved by the time `$onInit` runs; a promise is awaited anyway.
      const connection = await inject<Connection | Promise<Connection>>(settings.dbToken!)
      if (!connection) throw new MonqueError('INVALID_CONNECTION', `monque: the provider of \`dbToken\` ${String(settings.dbToken)} gave no connection`)
      return connection
    }
    case 'dbFactory':
      return settings.dbFactory!()
    default:
      throw new MonqueError(
        'INVALID_CONNECTION',
        'monque: configure `monque.connection` (a MongoDB URI, a Db or a Mongoose connection), `monque.mongooseConnectionId`, `monque.dbToken` or `monque.dbFactory`',
      )
  }
}

async function fromMongoose(id: string): Promise<Connection> {
  let mongoose: { MongooseService: new (...args: any[]) => { get(id?: string): unknown } }
  try {
    mongoose = (await import('@tsed/mongoose')) as never
  } catch {
    throw new MonqueError('INVALID_CONNECTION', 'monque: `mongooseConnectionId` needs @tsed/mongoose installed')
  }
  const connection = inject(mongoose.MongooseService).get(id)
  if (!connection) throw new MonqueError('INVALID_CONNECTION', `monque: @tsed/mongoose has no connection "${id}"`)
  return connection as Connection
}
