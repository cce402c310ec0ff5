// The statistics the benchmarks report: medians of repetitions, percentiles of latencies.

/** The median of `xs`, nulls (failed repetitions) left out; null when none is left. */
export const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b)
  return s.length ? s[Math.floor(s.length / 2)] : null
}

/** The `p`-th percentile of `xs` (nearest rank, rounded down). */
export const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
