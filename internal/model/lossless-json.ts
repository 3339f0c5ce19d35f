/**
 * Parses JSON like JSON.parse, except that an integer literal outside JavaScript's safe range (|n| > 2^53 - 1) becomes
 * a bigint instead of a rounded number. Used only when a message holds such a value where it matters (an int64 LSN,
 * transaction id or column): the native parser is several times faster and is tried first. Throws SyntaxError on
 * malformed input, like JSON.parse.
 */
export function parseJsonLossless(text: string): unknown {
  let i = 0
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at position ${i} in JSON`)
  }
  const skipBlanks = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i)
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break
      i++
    }
  }
  const parseString = (): string => {
    const start = i
    i++ // opening quote
    for (;;) {
      if (i >= text.length) fail('Unterminated string')
      const c = text.charCodeAt(i)
      if (c === 0x22) break
      // A backslash escapes the next character, whatever it is; JSON.parse below validates the escape itself.
      i += c === 0x5c ? 2 : 1
    }
    i++ // closing quote
    // The native parser handles escapes (\uXXXX, surrogates) and rejects control characters exactly as JSON.parse.
    return JSON.parse(text.slice(start, i)) as string
  }
  const parseNumber = (): number | bigint => {
    const match = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y
    match.lastIndex = i
    const m = match.exec(text)
    if (m === null) return fail('Unexpected token')
    i += m[0].length
    const n = Number(m[0])
    if (m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n)) return BigInt(m[0])
    return n
  }
  const parseLiteral = (word: string, value: unknown): unknown => {
    if (text.startsWith(word, i)) {
      i += word.length
      return value
    }
    return fail('Unexpected token')
  }
  const parseValue = (depth: number): unknown => {
    if (depth > 512) fail('Nesting too deep')
    skipBlanks()
    const c = text[i]
    if (c === '{') {
      i++
      const obj: Record<string, unknown> = {}
      skipBlanks()
      if (text[i] === '}') {
        i++
        return obj
      }
      for (;;) {
        skipBlanks()
        if (text[i] !== '"') fail('Expected a property name')
        const key = parseString()
        skipBlanks()
        if (text[i] !== ':') fail("Expected ':'")
        i++
        // defineProperty: a "__proto__" key must become an own property, as with JSON.parse.
        Object.defineProperty(obj, key, {
          value: parseValue(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        })
        skipBlanks()
        if (text[i] === ',') {
          i++
          continue
        }
        if (text[i] === '}') {
          i++
          return obj
        }
        fail("Expected ',' or '}'")
      }
    }
    if (c === '[') {
      i++
      const arr: unknown[] = []
      skipBlanks()
      if (text[i] === ']') {
        i++
        return arr
      }
      for (;;) {
        arr.push(parseValue(depth + 1))
        skipBlanks()
        if (text[i] === ',') {
          i++
          continue
        }
        if (text[i] === ']') {
          i++
          return arr
        }
        fail("Expected ',' or ']'")
      }
    }
    if (c === '"') return parseString()
    if (c === 't') return parseLiteral('true', true)
    if (c === 'f') return parseLiteral('false', false)
    if (c === 'n') return parseLiteral('null', null)
    if (c === undefined) return fail('Unexpected end')
    return parseNumber()
  }
  const value = parseValue(0)
  skipBlanks()
  if (i !== text.length) fail('Unexpected data after the value')
  return value
}
