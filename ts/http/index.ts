// `monque/http`: the operators' HTTP API and dashboard (handler.ts).
export { createMonqueHandler, toFastify } from './handler'
export type { HttpAction, MonqueHttpHandler, MonqueHttpOptions } from './handler'
