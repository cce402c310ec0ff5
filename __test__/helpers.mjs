// Each test gets its own database on the server named by MONGODB_URI and drops it after.
import { MongoClient, ObjectId } from 'mongodb'

export const uri = process.env.MONGODB_URI
if (!uri) throw new Error('MONGODB_URI is not set: run `npm test`, which starts the embedded server')

/** Fast timings for tests. */
export const fast = { pollInterval: 50, leaseDuration: 1500, heartbeatInterval: 300, shutdownTimeout: 5000 }

export async function testDb(t) {
  const client = await MongoClient.connect(uri)
  const name = `monque_js_${new ObjectId().toHexString()}`
  const db = client.db(name)
  t.after(async () => {
    await db.dropDatabase()
    await client.close()
  })
  return { client, db, name, jobs: db.collection('monque_jobs') }
}

export async function eventually(check, { within = 5000, what = 'condition' } = {}) {
  const deadline = Date.now() + within
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${within} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export const oid = (id) => new ObjectId(id)
