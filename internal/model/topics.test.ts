import { describe, expect, it } from 'vitest'

import { PipelineError } from '../errors/index.js'
import { DEFAULT_TOPICS, entityOfTopic, topicOfEntity } from './index.js'

describe('topics', () => {
  it('maps the default topics', () => {
    expect(entityOfTopic('users')).toBe('user')
    expect(entityOfTopic('orders')).toBe('order')
    expect(topicOfEntity('order')).toBe('orders')
    expect(DEFAULT_TOPICS).toEqual({ user: 'users', order: 'orders', product: 'products' })
  })

  it('accepts a mapping', () => {
    const topics = { user: 'test-users-1', order: 'test-orders-1' }
    expect(entityOfTopic('test-orders-1', topics)).toBe('order')
    expect(topicOfEntity('user', topics)).toBe('test-users-1')
  })

  it('rejects an unknown topic with CONFIG_ERROR', () => {
    expect(() => entityOfTopic('users.dlq')).toThrow(PipelineError)
    expect(() => entityOfTopic('users.dlq')).toThrow(
      "topic 'users.dlq' is neither the users topic ('users') nor the orders topic ('orders')",
    )
  })
})
