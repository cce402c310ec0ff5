// The ESM entry re-exports the CommonJS build, so `import` and `require` share one
// Monque class (no dual-package hazard). Export names are read from the build itself.
import { createRequire } from 'node:module'
import { writeFileSync } from 'node:fs'

const require = createRequire(import.meta.url)
const names = Object.keys(require('../dist/index.js')).filter((n) => n !== '__esModule' && n !== 'default')
writeFileSync(
  new URL('../dist/index.mjs', import.meta.url),
  `import cjs from './index.js'\nexport const { ${names.join(', ')} } = cjs\nexport default cjs\n`,
)
writeFileSync(new URL('../dist/index.d.mts', import.meta.url), `export * from './index.js'\n`)
