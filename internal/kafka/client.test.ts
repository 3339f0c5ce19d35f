import { runInThisContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { dropKafkajsNegativeTimeoutWarning } from './client.js'

describe("kafkajs' negative-timeout warning (Node 24)", () => {
  const seen: string[] = []
  const listener = (w: Error) => seen.push(`${w.name}: ${w.message}`)
  afterEach(() => {
    process.off('warning', listener)
    seen.length = 0
  })

  /** Emits a TimeoutNegativeWarning from code whose stack names `file`, as Node's timers do for a negative delay. */
  const emitFrom = (file: string) =>
    runInThisContext(`process.emitWarning('-1796124176681 is a negative number.', 'TimeoutNegativeWarning')`, {
      filename: file,
    })

  it("drops it when kafkajs' request queue raised it, and no other warning", async () => {
    dropKafkajsNegativeTimeoutWarning()
    dropKafkajsNegativeTimeoutWarning()
    process.on('warning', listener)
    emitFrom('/app/node_modules/kafkajs/src/network/requestQueue/index.js')
    emitFrom('/app/internal/mine.js')
    process.emitWarning('something else', 'ExperimentalWarning')
    await new Promise((resolve) => setImmediate(resolve))
    expect(seen).toEqual([
      'TimeoutNegativeWarning: -1796124176681 is a negative number.',
      'ExperimentalWarning: something else',
    ])
  })
})
