// Integration project setup: brings the long-lived baseline replicate group (see prepareReplicateGroup in
// cdc-helpers.ts) up to date once, before any test, with a budget fit for a used stack. After a benchmark the change
// topics can hold millions of changes the baseline has not applied yet; catching up inside the first CDC test would
// count against that test's timeout. Every CDC test still runs the baseline itself (then only a few seconds).
import { spawn } from 'node:child_process'
import { SETTINGS, readSetting } from '../internal/cli/index.js'

const CATCH_UP_MS = 30 * 60_000

export default async function setup(): Promise<void> {
  if (process.env.CDC_TEST_FULL_REPLAY === '1') return
  const group = process.env.CDC_TEST_BASELINE_GROUP ?? 'cdc-test-baseline'
  const topics = readSetting(SETTINGS.replicateTopics, {})
  const args = ['cmd/replicate', '--group', group, '--topics', topics.join(','), '--idle-timeout', '4']
  // Metrics off: the default port may be taken by a replicate running beside the tests (the demo, a bench).
  args.push('--session-timeout', '10', '--summary-json', '--metrics-port', '0')
  const started = Date.now()
  const child = spawn(process.execPath, args, {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-8_000)))
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8_000)))
  const timer = setTimeout(() => child.kill('SIGKILL'), CATCH_UP_MS)
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  clearTimeout(timer)
  if (code !== 0) {
    throw new Error(
      `the baseline replicate group ${group} did not catch up (exit ${code}, ${Date.now() - started} ms)\n` +
        `stdout:\n${stdout}\nstderr:\n${stderr}`,
    )
  }
  const summary = stdout
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"processed"'))
    .at(-1)
  if (summary === undefined) throw new Error(`the baseline replicate group ${group} printed no summary:\n${stdout}`)
  const { processed, deadLettered } = JSON.parse(summary) as { processed: number; deadLettered: number }
  // Like prepareReplicateGroup: a change the baseline dead-lettered is missing from Cassandra, so no compare is valid.
  if (deadLettered !== 0) throw new Error(`the baseline replicate group ${group} dead-lettered ${deadLettered} changes`)
  console.log(`baseline replicate group ${group}: ${processed} changes applied in ${Date.now() - started} ms`)
}
