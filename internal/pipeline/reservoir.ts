/**
 * A uniform random sample of at most `capacity` values from a stream of any length (Vitter's algorithm R), so a
 * consumer that runs for days reports latency percentiles in bounded memory.
 */
export class Reservoir {
  readonly #samples: number[] = []
  #seen = 0

  constructor(
    readonly capacity = 100_000,
    private readonly random: () => number = Math.random,
  ) {}

  add(value: number): void {
    this.#seen++
    if (this.#samples.length < this.capacity) this.#samples.push(value)
    else {
      const i = Math.floor(this.random() * this.#seen)
      if (i < this.capacity) this.#samples[i] = value
    }
  }

  /** How many values were added in all. */
  get seen(): number {
    return this.#seen
  }

  get samples(): readonly number[] {
    return this.#samples
  }

  /** The q-th percentile (0..100) of the sample, nearest-rank; NaN when empty. */
  percentile(q: number): number {
    return percentile(this.#samples, q)
  }
}

/** The q-th percentile (0..100) of unsorted samples, nearest-rank; NaN when empty. */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = Float64Array.from(samples).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))
  return sorted[rank]
}
