// The ESM entries re-export the CommonJS build, so `import` and `require` share one
// Monque class (no dual-package hazard). Export names are read from the build itself.
// Also copies the dashboard's static files next to the built HTTP handler.
import { createRequire } from 'node:module'
import { cpSync, writeFileSync } from 'node:fs'

const require = createRequire(import.meta.url)
for (const entry of ['index', 'http/index']) {
  const names = Object.keys(require(`../dist/${entry}.js`)).filter((n) => n !== '__esModule' && n !== 'default')
  writeFileSync(
    new URL(`../dist/${entry}.mjs`, import.meta.url),
    `import cjs from './index.js'\nexport const { ${names.join(', ')} } = cjs\nexport default cjs\n`,
  )
  writeFileSync(new URL(`../dist/${entry}.d.mts`, import.meta.url), `export * from './index.js'\n`)
}
cpSync(new URL('../ts/http/assets', import.meta.url), new URL('../dist/http/assets', import.meta.url), { recursive: true })
