import pRetry from 'p-retry'

import { ErrorCodes, PipelineError, isRetriable } from '../errors/index.js'

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

/** Sink failures (unavailable, timeout, conflict): 8 tries, 200 ms doubling up to 10 s, 60 s at most. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  attempts: 8,
  baseMs: 200,
  maxMs: 10_000,
  maxElapsedMs: 60_000,
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

/** Passed to onRetry before each wait. */
export interface RetryEvent {
  error: PipelineError
  /** The try that just failed (1 = first). */
  attempt: number
  /** The wait before the next try. */
  delayMs: number
  elapsedMs: number
}

/** Options of {@link retryWithBackoff}. */
export interface RetryOptions {
  onRetry?: (event: RetryEvent) => void
  /** Aborting stops waiting at once and rejects with the signal's reason. */
  signal?: AbortSignal
  /** For tests (see computeBackoffMs). */
  random?: () => number
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

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Runs `fn` until it succeeds, retrying only PipelineErrors with retriable = true, with exponential backoff and
 * full jitter, within `policy`. Rejects with the last error when it is not retriable or the policy is spent, or with
 * the signal's reason when aborted. `fn` receives the try number (1 = first).
 */
export async function retryWithBackoff<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  options: RetryOptions = {},
): Promise<T> {
  validateRetryPolicy(policy)
  const startedAt = performance.now()
  return pRetry(fn, {
    retries: policy.attempts - 1,
    maxRetryTime: policy.maxElapsedMs,
    signal: options.signal,
    // p-retry's own delay is switched off: its "randomize" multiplies by 1..2 and stops jittering at maxTimeout,
    // so every stuck worker would retry in lockstep. The full-jitter wait happens in shouldRetry instead.
    minTimeout: 0,
    maxTimeout: 0,
    randomize: false,
    shouldRetry: async ({ error, attemptNumber }) => {
      if (!isRetriable(error)) return false
      const elapsedMs = performance.now() - startedAt
      const delayMs = Math.min(
        computeBackoffMs(attemptNumber, { ...policy, jitter: 'full', random: options.random }),
        Math.max(0, policy.maxElapsedMs - elapsedMs),
      )
      options.onRetry?.({ error: error as PipelineError, attempt: attemptNumber, delayMs, elapsedMs })
      await sleep(delayMs, options.signal)
      return true
    },
  })
}
