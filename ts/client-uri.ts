// A MongoClient's effective settings as a connection string for the Rust driver.
// The Node driver merges its URI and the client options given in code into
// `client.options`; monque's core opens its own client from a URI, so every setting
// the Rust driver reads is written back into one. Only settings that differ from a
// default client are written, so the Rust driver keeps its own defaults for the rest.
import { MonqueError } from './errors'

type Options = Record<string, any>

/** Options both drivers read alike, under the same URI name. */
const PLAIN = [
  'appName', 'replicaSet', 'directConnection', 'loadBalanced', 'retryWrites', 'retryReads',
  'connectTimeoutMS', 'socketTimeoutMS', 'serverSelectionTimeoutMS', 'heartbeatFrequencyMS',
  'localThresholdMS', 'maxIdleTimeMS', 'maxPoolSize', 'minPoolSize', 'maxConnecting',
  'waitQueueTimeoutMS', 'zlibCompressionLevel', 'srvMaxHosts', 'srvServiceName', 'serverMonitoringMode',
  'tls', 'tlsCAFile', 'tlsCertificateKeyFile', 'tlsCertificateKeyFilePassword', 'tlsAllowInvalidCertificates',
]

/** Connection settings the Rust driver cannot take from a URI: refused, never dropped. */
const UNSUPPORTED: Record<string, string> = {
  // The Node driver turns tlsAllowInvalidHostnames / tlsInsecure into this function.
  checkServerIdentity: 'tlsAllowInvalidHostnames and custom checks are not supported',
  ca: 'use tlsCAFile', cert: 'use tlsCertificateKeyFile', key: 'use tlsCertificateKeyFile',
  pfx: 'use tlsCertificateKeyFile', crl: 'not supported', tlsCRLFile: 'not supported',
  secureContext: 'use tlsCAFile / tlsCertificateKeyFile',
  proxyHost: 'not supported', autoEncryption: 'not supported',
}

/** The connection string a `MongoClient` was created with, its client options included. */
export function clientUri(client: unknown): string {
  const c = client as { options?: Options; s?: { url?: unknown }; constructor: new (uri: string) => { options: Options } }
  const options = c?.options
  let defaults: Options | undefined
  try {
    defaults = options && new c.constructor('mongodb://localhost').options
  } catch {
    defaults = undefined
  }
  if (!options || !defaults || !Array.isArray(options.hosts)) {
    // Not a driver 4-6 client: its own connection string is all there is.
    const url = c?.s?.url
    if (typeof url === 'string' && url.startsWith('mongodb')) return url
    throw new MonqueError('INVALID_CONNECTION', 'cannot read the connection settings of this MongoClient; pass the URI string instead')
  }
  const refused = Object.keys(UNSUPPORTED).filter((k) => set(options, defaults, k) && !derived(options, k))
  if (refused.length) {
    throw new MonqueError(
      'INVALID_CONNECTION',
      `monque's core cannot use these client options: ${refused.map((k) => `${k} (${UNSUPPORTED[k]})`).join(', ')}; pass a mongodb:// URI with supported options instead`,
    )
  }
  const query: [string, unknown][] = []
  for (const key of PLAIN) if (set(options, defaults, key)) query.push([key, options[key]])
  if (set(options, defaults, 'compressors')) query.push(['compressors', [].concat(options.compressors).join(',')])
  const rp = options.readPreference
  if (rp && (rp.mode !== defaults.readPreference?.mode || rp.tags?.length || (rp.maxStalenessSeconds ?? -1) >= 0)) {
    query.push(['readPreference', rp.mode])
    for (const tags of rp.tags ?? []) query.push(['readPreferenceTags', pairs(tags)])
    if ((rp.maxStalenessSeconds ?? -1) >= 0) query.push(['maxStalenessSeconds', rp.maxStalenessSeconds])
  }
  if (options.readConcern?.level) query.push(['readConcernLevel', options.readConcern.level])
  const wc = options.writeConcern
  if (wc?.w !== undefined) query.push(['w', wc.w])
  if (wc?.wtimeoutMS ?? wc?.wtimeout) query.push(['wtimeoutMS', wc.wtimeoutMS ?? wc.wtimeout])
  if ((wc?.journal ?? wc?.j) !== undefined) query.push(['journal', wc.journal ?? wc.j])
  const cred = options.credentials
  let userinfo = ''
  if (cred) {
    if (cred.username) userinfo = `${encodeURIComponent(cred.username)}${cred.password ? `:${encodeURIComponent(cred.password)}` : ''}@`
    if (cred.mechanism && cred.mechanism !== 'DEFAULT') query.push(['authMechanism', cred.mechanism])
    // An SRV record may name the auth source: leave it to the Rust driver unless given.
    if (cred.source && (options.userSpecifiedAuthSource || !options.srvHost)) query.push(['authSource', cred.source])
    const props = Object.entries(cred.mechanismProperties ?? {}).filter(([, v]) => v !== undefined)
    if (props.some(([, v]) => typeof v === 'function' || typeof v === 'object')) {
      throw new MonqueError('INVALID_CONNECTION', "monque's core cannot use callback auth mechanism properties; pass a mongodb:// URI instead")
    }
    if (props.length) query.push(['authMechanismProperties', pairs(Object.fromEntries(props))])
  }
  const srv = typeof options.srvHost === 'string' && options.srvHost
  const hosts = srv ? srv : options.hosts.map(hostString).join(',')
  // The URI's database: the default auth source of both drivers (monque's own comes from the Db).
  const path = set(options, defaults, 'dbName') ? encodeURIComponent(options.dbName) : ''
  const search = query.map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&')
  return `mongodb${srv ? '+srv' : ''}://${userinfo}${hosts}/${path}${search ? `?${search}` : ''}`
}

/** Set to something other than a default client has. */
function set(options: Options, defaults: Options, key: string): boolean {
  const value = options[key]
  if (value === undefined || value === null) return false
  if (typeof value === 'function') return value !== defaults[key]
  try {
    return JSON.stringify(value) !== JSON.stringify(defaults[key])
  } catch {
    return value !== defaults[key]
  }
}

/** TLS material the driver loaded itself from the tls*File options when it connected. */
function derived(options: Options, key: string): boolean {
  if (key === 'ca') return typeof options.tlsCAFile === 'string'
  if (key === 'cert' || key === 'key') return typeof options.tlsCertificateKeyFile === 'string'
  return false
}

function pairs(record: Record<string, unknown>): string {
  return Object.entries(record).map(([k, v]) => `${k}:${String(v)}`).join(',')
}

function hostString(h: { host?: string; port?: number; isIPv6?: boolean; socketPath?: string }): string {
  if (h.socketPath) return encodeURIComponent(h.socketPath)
  const host = h.isIPv6 ? `[${h.host}]` : h.host
  return h.port ? `${host}:${h.port}` : String(host)
}
