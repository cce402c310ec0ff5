import { clientUri } from './client-uri'
import { MonqueError } from './errors'

/** The parts of the `mongodb` driver's `Db` monque reads. */
export interface DbLike {
  databaseName: string
  client: unknown
}

/** The parts of a Mongoose `Connection` monque reads. */
export interface MongooseConnectionLike {
  getClient(): unknown
  name?: string
  db?: { databaseName?: string } | null
}

/** A connection string, a native `Db`, or a Mongoose connection. */
export type Connection = string | DbLike | MongooseConnectionLike

/**
 * The core runs its own Rust driver client (a second pool), so a `Db` or Mongoose
 * connection is turned into a connection string carrying its client's settings
 * (see client-uri.ts) and its database name.
 */
export function resolveConnection(connection: Connection): { uri: string; database?: string } {
  if (typeof connection === 'string') {
    if (!/^mongodb(\+srv)?:\/\//.test(connection)) {
      throw new MonqueError('INVALID_URI', 'connection string must start with mongodb:// or mongodb+srv://')
    }
    return { uri: connection }
  }
  if (connection && typeof connection === 'object') {
    if ('getClient' in connection && typeof connection.getClient === 'function') {
      const database = connection.name || connection.db?.databaseName
      if (!database) {
        throw new MonqueError('INVALID_CONNECTION', 'the Mongoose connection is not open yet (no database name); await it first')
      }
      return { uri: clientUri(connection.getClient()), database }
    }
    if ('databaseName' in connection && 'client' in connection) {
      return { uri: clientUri(connection.client), database: connection.databaseName }
    }
  }
  throw new MonqueError(
    'INVALID_CONNECTION',
    'connection must be a mongodb:// URI, a native Db from the mongodb package, or a Mongoose connection',
  )
}
