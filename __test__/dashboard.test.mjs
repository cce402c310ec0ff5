// The dashboard in a real headless Chromium (puppeteer-core driving the system's
// chromium; `.ci/run` installs it): counts, a failed job's stack, a retry that completes
// live, pause and resume. Saves docs/dashboard.png for the README.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import puppeteer from 'puppeteer-core'

import { Monque } from '../dist/index.mjs'
import { createMonqueHandler } from '../dist/http/index.mjs'
import { eventually, fast, testDb, uri } from './helpers.mjs'

function chromiumPath() {
  if (process.env.MONQUE_CHROMIUM) return process.env.MONQUE_CHROMIUM
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim()
    } catch {}
  }
  throw new Error('no chromium found: apt-get install -y chromium (or set MONQUE_CHROMIUM)')
}

/** Serves the dashboard of `monque` at /monque/ on a node:http server; returns its URL. */
async function serveDashboard(t, monque, options) {
  const handler = createMonqueHandler(monque, { prefix: '/monque', ...options })
  const server = http.createServer(handler)
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => {
    handler.close()
    server.closeAllConnections()
    return new Promise((r) => server.close(r))
  })
  return `http://127.0.0.1:${server.address().port}/monque/`
}

async function openBrowser(t) {
  const browser = await puppeteer.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  t.after(() => browser.close())
  return browser.newPage()
}

test('the dashboard: counts, a failed job and its stack, retry until it completes live, pause and resume', async (t) => {
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false, maxRetries: 0 })
  await monque.initialize()
  let mailServerDown = true
  monque.register('send-mail', async (job) => {
    if (job.data.to === 'grace' && mailServerDown) throw new Error('SMTP 421: service not available')
    return { sent: true }
  })
  monque.start()
  t.after(() => monque.stop())
  for (const to of ['ada', 'alan', 'barbara']) await monque.enqueue('send-mail', { to })
  // Enqueued by a traced request: the detail shows its trace id, to look it up.
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const failing = await monque.enqueue('send-mail', { to: 'grace' }, { traceContext: { traceparent } })
  for (let i = 0; i < 30; i++) await monque.enqueue('nightly-report', { day: i }, { runAt: Date.now() + 3_600_000 + i * 60_000 })
  await monque.schedule('0 3 * * *', 'nightly-report', {}, { timezone: 'Europe/Berlin', uniqueKey: 'nightly' })
  await eventually(async () => (await monque.getJob(failing.id)).status === 'failed', { what: 'the failing job' })
  await eventually(async () => (await monque.getQueueStats({ name: 'send-mail' })).completed === 3, { what: '3 completed' })

  const base = await serveDashboard(t, monque, { authorize: () => true, liveIntervalMs: 200 })
  const page = await openBrowser(t)
  const problems = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`))
  await page.setViewport({ width: 1280, height: 800 })
  await page.goto(base, { waitUntil: 'load' })

  // Counts per name and status.
  const count = (name, status) => page.$eval(`#names [data-name="${name}"][data-status="${status}"]`, (el) => Number(el.textContent.replace(/\D/g, '')))
  await page.waitForSelector('#names [data-name="send-mail"][data-status="failed"]')
  assert.equal(await count('send-mail', 'completed'), 3)
  assert.equal(await count('send-mail', 'failed'), 1)
  assert.equal(await count('nightly-report', 'pending'), 31)
  await page.waitForFunction(() => document.querySelector('#live')?.textContent.includes('live'))

  // The failed job: open it from the table, read its stack.
  await page.click('#names [data-name="send-mail"][data-status="failed"]')
  // The table shows the failed send-mail jobs only: that one.
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('#jobs tr[data-id]')]
    return rows.length === 1 && rows[0].dataset.id === id
  }, { timeout: 10_000 }, failing.id)
  assert.equal(await page.$eval('#filter-name', (el) => el.value), 'send-mail')
  await page.click(`#jobs tr[data-id="${failing.id}"]`)
  await page.waitForSelector('#job-detail [data-field="failStack"]')
  const stack = await page.$eval('#job-detail [data-field="failStack"]', (el) => el.textContent)
  assert.match(stack, /SMTP 421: service not available/)
  assert.match(stack, /\n\s+at /)
  assert.equal(await page.$eval('#job-detail [data-field="traceContext"]', (el) => el.textContent), '4bf92f3577b34da6a3ce929d0e0e4736')
  await page.screenshot({ path: screenshotPath() })

  // Retry it (the mail server is back) and watch it complete without reloading.
  mailServerDown = false
  await page.click('#job-detail button[data-action="retry"]')
  await page.waitForSelector('#confirm button[data-confirm="yes"]', { visible: true })
  await page.click('#confirm button[data-confirm="yes"]')
  await page.waitForFunction(() => document.querySelector('#job-detail [data-field="status"]')?.textContent.includes('completed'), { timeout: 10_000 })
  assert.equal((await monque.getJob(failing.id)).status, 'completed')
  await page.waitForFunction(() => document.querySelector('#names [data-name="send-mail"][data-status="completed"]')?.textContent.replace(/\D/g, '') === '4', { timeout: 10_000 })
  await page.keyboard.press('Escape')

  // Pause and resume a name.
  await page.click('button[data-action="pause"][data-name="send-mail"]')
  await page.waitForSelector('#confirm button[data-confirm="yes"]', { visible: true })
  await page.click('#confirm button[data-confirm="yes"]')
  await eventually(() => monque.isPaused('send-mail'), { what: 'send-mail paused' })
  await page.waitForSelector('button[data-action="resume"][data-name="send-mail"]', { visible: true })
  await page.click('button[data-action="resume"][data-name="send-mail"]')
  await page.waitForSelector('#confirm button[data-confirm="yes"]', { visible: true })
  await page.click('#confirm button[data-confirm="yes"]')
  await eventually(async () => !(await monque.isPaused('send-mail')), { what: 'send-mail resumed' })

  assert.deepEqual(problems, [])
})

test('the dashboard: a name\'s groups with their counts; pause and resume one group', async (t) => {
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false })
  await monque.initialize()
  // Started (healthy) but no worker for the name: the jobs wait, so the counts hold still.
  monque.start()
  t.after(() => monque.stop())
  for (const [group, n] of [['acme', 5], ['globex', 2], ['initech', 1]]) {
    await monque.enqueueMany(Array.from({ length: n }, (_, i) => ({ name: 'sync-tenant', data: { i }, options: { group } })))
  }
  const base = await serveDashboard(t, monque, { authorize: () => true, liveIntervalMs: 200 })
  const page = await openBrowser(t)
  const problems = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`))
  await page.setViewport({ width: 1280, height: 800 })
  await page.goto(base, { waitUntil: 'load' })
  // No name chosen: no groups panel.
  await page.waitForSelector('#names [data-name="sync-tenant"]')
  assert.equal(await page.$eval('#groups-section', (el) => el.hidden), true)
  await page.click('#names [data-name="sync-tenant"][data-status="pending"]')
  await page.waitForSelector('#groups-section:not([hidden]) #groups tr[data-group="acme"]')
  const rows = await page.$$eval('#groups tr[data-group]', (trs) => trs.map((tr) => [tr.dataset.group, tr.querySelector('[data-field="pending"]').textContent]))
  assert.deepEqual(rows, [['acme', '5'], ['globex', '2'], ['initech', '1']], 'most pending first')
  await page.click('#groups button[data-action="pause-group"][data-group="globex"]')
  await page.waitForSelector('#confirm button[data-confirm="yes"]', { visible: true })
  await page.click('#confirm button[data-confirm="yes"]')
  await page.waitForSelector('#groups tr[data-group="globex"][data-paused="true"] .paused-badge')
  assert.equal((await monque.getGroups('sync-tenant')).find((g) => g.group === 'globex').paused, true)
  await page.click('#groups button[data-action="resume-group"][data-group="globex"]')
  await page.waitForSelector('#confirm button[data-confirm="yes"]', { visible: true })
  await page.click('#confirm button[data-confirm="yes"]')
  await page.waitForSelector('#groups tr[data-group="globex"][data-paused="false"]')
  assert.equal((await monque.getGroups('sync-tenant')).find((g) => g.group === 'globex').paused, false)

  // A group's name filters the jobs to it; bulk actions then act on that tenant alone.
  await page.click('#groups button[data-filter-group="globex"]')
  await page.waitForSelector('#filter-group:not([hidden])')
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#jobs tr[data-id]')]
    return rows.length === 2 && document.querySelector('#groups tr[data-group="globex"][aria-current="true"]')
  })
  assert.equal(await page.$eval('#filter-group-name', (el) => el.textContent), 'globex')
  assert.match(await page.$eval('#bulk-scope', (el) => el.textContent), /in group globex \(≈2\)/)
  await page.screenshot({ path: new URL('../docs/dashboard-groups.png', import.meta.url).pathname })
  await page.click('#bulk button[data-action="bulk-cancel"]')
  await page.waitForSelector('#confirm button[data-confirm="yes"]', { visible: true })
  assert.match(await page.$eval('#confirm-text', (el) => el.textContent), /Cancel 2 pending jobs of sync-tenant in group globex\?/)
  await page.click('#confirm button[data-confirm="yes"]')
  await page.waitForSelector('#toast .msg.ok')
  const counts = Object.fromEntries((await monque.getGroups('sync-tenant')).map((g) => [g.group, [g.counts.pending, g.counts.cancelled]]))
  assert.deepEqual(counts, { acme: [5, 0], globex: [0, 2], initech: [1, 0] })
  // Clearing the group shows every group's jobs again.
  await page.click('#filter-group-clear')
  await page.waitForFunction(() => document.querySelector('#filter-group').hidden)
  await page.waitForFunction(() => document.querySelectorAll('#jobs tr[data-id]').length === 6)
  assert.deepEqual(problems, [])
})

test('read-only: the dashboard shows no actions and the API refuses them', async (t) => {
  const { name: database } = await testDb(t)
  const monque = new Monque(uri, { ...fast, database, logger: false })
  await monque.initialize()
  await monque.enqueue('send-mail', { to: 'ada' }, { runAt: Date.now() + 3_600_000 })
  const base = await serveDashboard(t, monque, {})
  const page = await openBrowser(t)
  await page.goto(base, { waitUntil: 'load' })
  await page.waitForSelector('#names [data-name="send-mail"]')
  const visibleActions = await page.$$eval('button[data-action]', (buttons) => buttons.filter((b) => b.offsetParent !== null && !b.disabled).length)
  assert.equal(visibleActions, 0)
})

function screenshotPath() {
  const dir = new URL('../docs/', import.meta.url)
  if (!existsSync(dir)) mkdirSync(dir)
  return new URL('dashboard.png', dir).pathname
}
