// Installed without its platform package, monque must say which platform lacks a binary.
const assert = require('node:assert/strict')

try {
  require('monque')
  assert.fail('require("monque") loaded without a native binary')
} catch (err) {
  assert.equal(err.code, 'NATIVE_BINDING_UNAVAILABLE', String(err))
  assert.match(err.message, /linux-x64-gnu/)
  assert.match(err.message, /monque-linux-x64-gnu is not installed/)
  console.log(`missing binary: ${err.code}: ${err.message}`)
}
