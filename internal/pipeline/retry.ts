import { ErrorCodes, PipelineError } from '../errors/index.js'

/** Options of {@link computeBackoffMs}. */
export interface BackoffOptions {
  baseMs: number
  maxMs: number
  /** Growth per attempt. Default 2. */
  factor?: number
  /** 'full': uniform in [0, ceiling] so retrying workers spread out; 'none': the ceiling itself. Default 'full'. */
  jitter?: 'full' | 'none'
  /** Uniform in [0, 1); injectable for tests. Default Math.random. */
  random?: () => number
}

/**
 * Delay before retry number `attempt` (1 = first retry): min(maxMs, baseMs * factor^(attempt-1)), with full jitter
 * a uniform draw in [0, that ceiling] (AWS "full jitter"), rounded to whole milliseconds.
 */
export function computeBackoffMs(attempt: number, options: BackoffOptions): number {
  const factor = options.factor ?? 2
  const exponent = Math.max(0, Math.floor(attempt) - 1)
  // factor ** exponent overflows to Infinity for huge attempts; min() still gives maxMs.
  const ceiling = Math.min(options.maxMs, options.baseMs * factor ** exponent)
  if ((options.jitter ?? 'full') === 'none') return Math.round(ceiling)
  return Math.round((options.random ?? Math.random)() * ceiling)
}

/** How long to keep trying a retriable failure. */
export interface RetryPolicy {
  /** Total tries including the first; Infinity to be bounded by maxElapsedMs (and a signal) only. */
  attempts: number
  baseMs: number
  maxMs: number
  /** No retry starts after this long since the first try. */
  maxElapsedMs: number
  /** Default 2. */
  factor?: number
}

/**
 * A message that failed retriably, typically an order whose user has not arrived yet: the user is usually a batch
 * away, and the partition waits meanwhile, so retry soon and often (50 ms doubling up to 1 s), for 60 s, then DLQ.
 */
export const MISSING_REFERENCE_RETRY_POLICY: Readonly<RetryPolicy> = {
  attempts: Number.POSITIVE_INFINITY,
  baseMs: 50,
  maxMs: 1_000,
  maxElapsedMs: 60_000,
}

/** Checks a policy once, so a bad one fails at start rather than at the first failure. */
export function validateRetryPolicy(policy: RetryPolicy): void {
  const fail = (rule: string, got: unknown): never => {
    throw new PipelineError(ErrorCodes.CONFIG_ERROR, `retry policy ${rule} (got ${String(got)})`)
  }
  const { attempts, baseMs, maxMs, maxElapsedMs, factor = 2 } = policy
  if (!(attempts === Number.POSITIVE_INFINITY || (Number.isSafeInteger(attempts) && attempts >= 1))) {
    fail('attempts must be an integer >= 1 or Infinity', attempts)
  }
  if (!(Number.isFinite(baseMs) && baseMs >= 0)) fail('baseMs must be a number >= 0', baseMs)
  if (!(Number.isFinite(maxMs) && maxMs >= baseMs)) fail('maxMs must be a number >= baseMs', maxMs)
  if (!(maxElapsedMs >= 0)) fail('maxElapsedMs must be a number >= 0', maxElapsedMs)
  if (!(Number.isFinite(factor) && factor >= 1)) fail('factor must be a number >= 1', factor)
}
