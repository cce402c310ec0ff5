// A Db or Mongoose connection reaches the core with its client's options (credentials,
// authSource, TLS, replicaSet, pool size...), not only its connection string.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import { DITest, inject, injectable } from '@tsed/di'
import { MongoClient } from 'mongodb'

import { MonqueService } from '../dist/tsed/index.mjs'
import { testDb, uri } from './helpers.mjs'

const { resolveConnection } = createRequire(import.meta.url)('../dist/connection.js')

/** The URI the core receives, split into its parts. */
function parse(connection) {
  const { uri: target, database } = resolveConnection(connection)
  const [, scheme, userinfo, hosts, path, query] = /^(mongodb(?:\+srv)?):\/\/(?:([^@]*)@)?([^/]*)\/([^?]*)(?:\?(.*))?$/.exec(target)
  return { scheme, userinfo, hosts, path, database, params: new URLSearchParams(query ?? '') }
}

test('client options given in code are carried into the URI the core opens', () => {
  const client = new MongoClient('mongodb://db1.example:27017,db2.example/app', {
    auth: { username: 'ops@corp', password: 'p:ss/word' },
    authSource: 'admin',
    authMechanism: 'SCRAM-SHA-256',
    tls: true,
    tlsCAFile: '/etc/ssl/ca.pem',
    tlsCertificateKeyFile: '/etc/ssl/client.pem',
    replicaSet: 'rs0',
    maxPoolSize: 7,
    minPoolSize: 2,
    readPreference: 'secondaryPreferred',
    readPreferenceTags: [{ dc: 'east' }],
    w: 'majority',
    journal: true,
    appName: 'billing',
    retryWrites: false,
    compressors: ['zlib'],
  })
  const { scheme, userinfo, hosts, path, database, params } = parse(client.db('jobs'))
  assert.equal(scheme, 'mongodb')
  assert.equal(userinfo, `${encodeURIComponent('ops@corp')}:${encodeURIComponent('p:ss/word')}`)
  assert.equal(hosts, 'db1.example:27017,db2.example:27017')
  assert.equal(path, 'app', "the URI's database stays the default auth source")
  assert.equal(database, 'jobs')
  assert.deepEqual(Object.fromEntries(params), {
    authSource: 'admin',
    authMechanism: 'SCRAM-SHA-256',
    tls: 'true',
    tlsCAFile: '/etc/ssl/ca.pem',
    tlsCertificateKeyFile: '/etc/ssl/client.pem',
    replicaSet: 'rs0',
    maxPoolSize: '7',
    minPoolSize: '2',
    readPreference: 'secondaryPreferred',
    readPreferenceTags: 'dc:east',
    w: 'majority',
    journal: 'true',
    appName: 'billing',
    retryWrites: 'false',
    compressors: 'zlib',
  })
})

test('defaults are not written out; SRV stays SRV', () => {
  assert.deepEqual([...parse(new MongoClient('mongodb://127.0.0.1:27017').db('x')).params], [])
  const srv = parse(new MongoClient('mongodb+srv://u:p@cluster0.example.net/app', { maxPoolSize: 20 }).db('x'))
  assert.equal(srv.scheme, 'mongodb+srv')
  assert.equal(srv.hosts, 'cluster0.example.net')
  assert.equal(srv.params.get('maxPoolSize'), '20')
  assert.equal(srv.params.get('authSource'), null, 'left to the SRV record / the URI database')
})

test('client options the core cannot take are refused, not dropped', () => {
  const client = new MongoClient('mongodb://127.0.0.1', { tls: true, ca: Buffer.from('pem'), tlsAllowInvalidHostnames: true })
  assert.throws(() => resolveConnection(client.db('x')), (err) => err.code === 'INVALID_CONNECTION' && /ca \(use tlsCAFile\)/.test(err.message) && /checkServerIdentity \(tlsAllowInvalidHostnames/.test(err.message))
})

test('against the server: a Db whose client has credentials or a replicaSet in its options is opened with them', async (t) => {
  const { name } = await testDb(t)
  for (const [options, code, pattern] of [
    [{ replicaSet: 'not-this-one' }, 'CONNECTION_ERROR', /replicaSet name "not-this-one"/],
    [{ auth: { username: 'nobody', password: 'wrong' } }, 'DATABASE_ERROR', /Authentication failed/],
  ]) {
    const client = new MongoClient(uri, options) // never connected: only its options matter
    await assert.rejects(
      DITest.create({ logger: { level: 'off' }, monque: { logger: false, serverSelectionTimeout: 1500, connection: client.db(name) } }),
      (err) => err.code === code && pattern.test(err.message),
    )
    await DITest.reset()
  }
})

test('the connection from a DI token (an async factory provider) or from dbFactory', async (t) => {
  const { name, client } = await testDb(t)
  const DB = Symbol('DB')
  injectable(DB).asyncFactory(async () => client.db(name))
  let factoryCalls = 0
  for (const settings of [{ dbToken: DB }, { dbFactory: async () => (factoryCalls++, inject(DB)) }]) {
    await DITest.create({ logger: { level: 'off' }, monque: { logger: false, ...settings } })
    const job = await DITest.get(MonqueService).enqueue('tsed-conn:noop', {})
    assert.equal((await client.db(name).collection('monque_jobs').findOne({ name: 'tsed-conn:noop' }))._id.toHexString(), job.id)
    await client.db(name).collection('monque_jobs').deleteMany({})
    await DITest.reset()
  }
  assert.equal(factoryCalls, 1, 'dbFactory ran once, inside the injector (inject() worked)')
  await assert.rejects(
    DITest.create({ logger: { level: 'off' }, monque: { connection: uri, dbToken: DB } }),
    (err) => err.code === 'INVALID_CONNECTION' && /`connection`, `dbToken`/.test(err.message),
  )
  await DITest.reset()
})
