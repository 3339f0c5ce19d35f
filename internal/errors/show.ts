// How an offending value is shown in an error message, the one way for every layer (the event and change decoders,
// the Cassandra value conversion, the settings): bounded, so that a huge or deeply nested payload can neither flood a
// log line or a DLQ header nor overflow the stack.

/** Nesting shown in a message at most: a deeper value is named as such (JSON.stringify would overflow the stack). */
export const MAX_SHOWN_DEPTH = 32

// Whether objects/arrays nest deeper than `limit` in `value`: iterative, so any depth is measured without recursion.
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    if (depth >= limit) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

/**
 * A value for a message: a string in single quotes, a bigint in digits, anything else as JSON (String() where JSON
 * has no form), cut to `max` characters with "..." at the end.
 */
export function show(value: unknown, max = 80): string {
  if (typeof value === 'object' && value !== null && nestsDeeperThan(value, MAX_SHOWN_DEPTH)) {
    return `a value nested deeper than ${MAX_SHOWN_DEPTH} levels`
  }
  const text =
    typeof value === 'string'
      ? `'${value}'`
      : typeof value === 'bigint'
        ? value.toString()
        : (JSON.stringify(value) ?? String(value))
  return text.length > max ? `${text.slice(0, max - 3)}...` : text
}
