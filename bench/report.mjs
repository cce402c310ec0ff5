// Turns bench/results.json into the generated part of bench/RESULTS.md (between the
// `results:begin` / `results:end` markers; the notes around it are written by hand)
// and draws bench/results.png with bench/chart.py.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'

const here = (file) => new URL(`./${file}`, import.meta.url)
const results = JSON.parse(readFileSync(here('results.json'), 'utf8'))
const OURS = 'monque'
/** Systems this run was asked for but could not measure, and why not. */
const UNMEASURED = results.skipped ?? {}

const fmt = (v, unit) => {
  if (v == null) return 'n/a'
  if (unit === 'ms') return v.toFixed(1)
  if (unit === 'CPU s' || unit === 'round trips') return v.toFixed(2)
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)
}
/** How many times better ours is (>1 means ours wins), whatever the metric's direction. */
const advantage = (metric, other) => {
  const ours = metric.median[OURS]
  const theirs = metric.median[other]
  if (ours == null || theirs == null || ours === 0 || theirs === 0) return null
  return metric.better === 'higher' ? ours / theirs : theirs / ours
}

const peers = results.systems.filter((s) => s !== OURS && s !== 'raw')
const header = ['Measurement', ...results.systems, ...Object.keys(UNMEASURED)]
const ratioHeads = [...peers.map((p) => `ours vs ${p}`), ...Object.keys(UNMEASURED).map((p) => `ours vs ${p}`)]
if (results.systems.includes('raw')) ratioHeads.push('ours vs raw')
const lines = [
  `Run of ${results.date.slice(0, 10)}: ${results.runs} repetitions, medians. Server ${results.server}; ${results.machine}.`,
  'Ratios say how many times better ours is (above 1: ours wins), for throughput ours ÷ theirs, for latency, CPU and memory theirs ÷ ours.',
  '',
  `| ${[...header, ...ratioHeads].join(' | ')} |`,
  `|${[...header, ...ratioHeads].map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
]
for (const m of results.metrics) {
  const cells = [
    `${m.label} (${m.unit}, ${m.better} is better)`,
    ...results.systems.map((s) => fmt(m.median[s], m.unit)),
    ...Object.keys(UNMEASURED).map(() => 'n/a'),
    ...peers.map((p) => (advantage(m, p) == null ? 'n/a' : `${advantage(m, p).toFixed(2)}×`)),
    ...Object.keys(UNMEASURED).map(() => 'n/a'),
  ]
  if (results.systems.includes('raw')) cells.push(advantage(m, 'raw') == null ? 'n/a' : `${(advantage(m, 'raw') * 100).toFixed(0)} %`)
  lines.push(`| ${cells.join(' | ')} |`)
}
lines.push('')
for (const [peer, why] of Object.entries(UNMEASURED)) lines.push(`${peer}: not measured: ${why}.`)
for (const [id, bySystem] of Object.entries(results.details ?? {})) {
  const label = results.metrics.find((m) => m.id === id)?.label ?? id
  lines.push('', `${label}, commands sent for ${results.jobs ?? 1000} jobs (last repetition):`, '')
  for (const [system, byCommand] of Object.entries(bySystem)) {
    const parts = Object.entries(byCommand)
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${name} ${n}`)
    lines.push(`- ${system}: ${parts.join(', ')}`)
  }
}
lines.push('', '![Benchmark chart](results.png)')

const file = here('RESULTS.md')
const generated = `<!-- results:begin (bench/report.mjs writes this part) -->\n${lines.join('\n')}\n<!-- results:end -->`
const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n\n<!-- results:begin -->\n<!-- results:end -->\n'
const updated = current.replace(/<!-- results:begin[^]*?<!-- results:end -->/, generated)
writeFileSync(file, updated)
console.log('wrote bench/RESULTS.md')

const python = process.env.MONQUE_BENCH_PYTHON ?? `${os.homedir()}/.cache/monque/venv/bin/python`
try {
  execFileSync(python, [new URL('./chart.py', import.meta.url).pathname], { stdio: 'inherit' })
} catch (err) {
  console.error(`chart not drawn (${err.message}); it needs Python with matplotlib: python3 -m venv ~/.cache/monque/venv && ~/.cache/monque/venv/bin/pip install matplotlib`)
}
