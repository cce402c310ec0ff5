// Issue 22 (groups), before building them: what the queries a fair claim could use cost
// on the server, with one group of 10,000 due jobs and with 100 groups of 100. Read by
// docs/design/groups.md.
//   MONGODB_URI=... node bench/groups-probe.mjs
import { MongoClient, ObjectId } from 'mongodb'
const client = await MongoClient.connect(process.env.MONGODB_URI)
const db = client.db('probe_groups_' + Date.now())
const jobs = db.collection('jobs')
await jobs.createIndex({ name: 1, status: 1, group: 1, nextRunAt: 1 }, { name: 'by_group_due' })
await jobs.createIndex({ name: 1, group: 1, status: 1, priority: -1, nextRunAt: 1 }, { name: 'claim_in_group' })
const now = new Date()
async function fill(groups, perGroup) {
  await jobs.deleteMany({})
  const docs = []
  for (let g = 0; g < groups; g++) for (let i = 0; i < perGroup; i++) docs.push({ name: 'x', status: 'pending', group: `g${String(g).padStart(4, '0')}`, priority: 0, nextRunAt: new Date(now - 1000 + i), data: { i } })
  for (let i = 0; i < docs.length; i += 1000) await jobs.insertMany(docs.slice(i, i + 1000))
}
async function time(label, fn, n = 20) {
  const t = performance.now()
  for (let i = 0; i < n; i++) await fn(i)
  console.log(label.padEnd(60), ((performance.now() - t) / n).toFixed(2), 'ms')
}
for (const [groups, per] of [[1, 10000], [100, 100]]) {
  await fill(groups, per)
  console.log(`--- ${groups} group(s) x ${per}`)
  const gs = Array.from({ length: groups }, (_, g) => `g${String(g).padStart(4, '0')}`)
  await time('next group after a cursor with due work (skip-scan)', (i) =>
    jobs.find({ name: 'x', status: 'pending', group: { $gt: gs[i % groups].slice(0, -1) }, nextRunAt: { $lte: now } }).sort({ group: 1, nextRunAt: 1 }).hint('by_group_due').limit(1).project({ group: 1 }).toArray())
  await time('best due job in one group', (i) =>
    jobs.find({ name: 'x', group: gs[i % groups], status: 'pending', nextRunAt: { $lte: now } }).sort({ priority: -1, nextRunAt: 1 }).hint('claim_in_group').limit(1).toArray())
  await time('processing count in one group', (i) => jobs.countDocuments({ name: 'x', group: gs[i % groups], status: 'processing' }, { hint: 'claim_in_group' }))
  await time('best due job of the name (no groups; today\'s claim shape)', () =>
    jobs.find({ name: 'x', status: 'pending', nextRunAt: { $lte: now } }).sort({ group: 1, nextRunAt: 1 }).hint('by_group_due').limit(1).toArray())
  const groupsColl = db.collection('groups')
  await groupsColl.deleteMany({})
  await groupsColl.insertMany(gs.map((g) => ({ name: 'x', group: g, due: now, servedAt: new Date(0), running: 0 })))
  await groupsColl.createIndex({ name: 1, servedAt: 1 })
  await time('groups collection: 8 least recently served with due work', () =>
    groupsColl.find({ name: 'x', due: { $lte: now }, running: { $lt: 5 } }).sort({ servedAt: 1 }).limit(8).toArray())
}
await db.dropDatabase()
await client.close()
