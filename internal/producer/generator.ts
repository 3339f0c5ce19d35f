import { Faker, en } from '@faker-js/faker'

import { ErrorCodes, PipelineError } from '../errors/index.js'
import {
  DEFAULT_TOPICS,
  ENTITIES,
  LIMITS,
  SCHEMA_VERSION,
  topicOfEntity,
  type AnyEvent,
  type Entity,
  type EventType,
  type OrderEvent,
  type OrderStatus,
  type EntitySpec,
  type GeneratorContext,
  type GeneratorHooks,
  type TopicNames,
  type UserEvent,
} from '../model/index.js'

/** Relative weights of the operations (any non-negative numbers, not all zero). */
export interface OperationMix {
  create: number
  update: number
  delete: number
}

/** Default mix: mostly creates, so the live population grows. */
export const DEFAULT_MIX: Readonly<OperationMix> = { create: 60, update: 30, delete: 10 }

/** Options of {@link EventGenerator}. */
export interface EventGeneratorOptions {
  /** Same seed (and same clock readings) -> same events. */
  seed: number
  mix?: OperationMix
  /** Source of timestamps; defaults to the real clock. Tests inject a fixed one for exact determinism. */
  clock?: () => Date
  topics?: TopicNames
  /** Share of operations aimed at users rather than orders; 0.25 gives about one user per three orders. */
  userShare?: number
}

/** One message to produce: the key is the entity id, so an entity's events stay in one partition, in order. */
export interface GeneratedEvent {
  entity: Entity
  topic: string
  key: string
  event: AnyEvent
}

interface LiveUser {
  id: string
  name: string
  dob: string
  createdAt: string
  version: number
  slot: number
  // The user's live orders, swap-removed via LiveOrder.userSlot: a Set per user costs far more memory.
  orders: LiveOrder[]
}

// An entity made through its definition's generator hooks (one without a reference, such as products).
interface LiveEntity {
  id: string
  fields: Record<string, unknown>
  createdAt: string
  version: number
  slot: number
}

// The entities with generator hooks, each with its live population.
interface HookedEntity {
  spec: EntitySpec
  hooks: GeneratorHooks
  live: SwapSet<LiveEntity>
}

interface LiveOrder {
  id: string
  user: LiveUser
  status: OrderStatus
  quantity: number
  total: number
  placedAt: string
  version: number
  slot: number
  userSlot: number
}

/** An unordered set with O(1) add, remove (swap with the last) and random pick, for millions of entities. */
class SwapSet<T extends { slot: number }> {
  readonly items: T[] = []

  get size(): number {
    return this.items.length
  }

  add(item: T): void {
    item.slot = this.items.length
    this.items.push(item)
  }

  remove(item: T): void {
    const last = this.items.pop()!
    if (last !== item) {
      this.items[item.slot] = last
      last.slot = item.slot
    }
    item.slot = -1
  }
}

const NEXT_STATUS: Partial<Record<OrderStatus, OrderStatus>> = { PLACED: 'SHIPPED', SHIPPED: 'DELIVERED' }

const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

// 32 bits as 8 hex digits; a table lookup is several times faster than toString(16).padStart().
function hex32(n: number): string {
  return BYTE_HEX[(n >>> 24) & 0xff]! + BYTE_HEX[(n >>> 16) & 0xff]! + BYTE_HEX[(n >>> 8) & 0xff]! + BYTE_HEX[n & 0xff]!
}

function validateMix(mix: OperationMix): void {
  for (const key of ['create', 'update', 'delete'] as const) {
    const w = mix[key]
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
      throw new PipelineError(ErrorCodes.CONFIG_ERROR, `mix.${key} must be a non-negative number (got ${String(w)})`)
    }
  }
  if (mix.create + mix.update + mix.delete <= 0) {
    throw new PipelineError(ErrorCodes.CONFIG_ERROR, 'mix must have at least one positive weight (got all zero)')
  }
}

/**
 * Generates realistic, seedable, referentially consistent user and order events: orders point at live users,
 * updates and deletes target live entities, versions go up by one per entity, and a deleted user's orders get no
 * further events. When no entity is eligible for an UPDATE/DELETE it makes a CREATE instead.
 */
export class EventGenerator {
  private readonly f: Faker
  private readonly clock: () => Date
  private readonly topics: TopicNames
  private readonly userShare: number
  private readonly createBelow: number
  private readonly updateBelow: number
  private readonly users = new SwapSet<LiveUser>()
  // Orders that can still change: PLACED or SHIPPED, of a live user.
  private readonly orders = new SwapSet<LiveOrder>()
  private lastNowMs = -Infinity
  private generatedCount = 0
  // Entities made by their definitions' hooks, and the share of operations aimed at any of them.
  private readonly hooked: HookedEntity[]
  private readonly hookedShare: number
  private readonly context: GeneratorContext

  constructor(options: EventGeneratorOptions) {
    const mix = options.mix ?? DEFAULT_MIX
    validateMix(mix)
    const userShare = options.userShare ?? 0.25
    if (!(userShare > 0 && userShare < 1)) {
      throw new PipelineError(ErrorCodes.CONFIG_ERROR, `userShare must be between 0 and 1 (got ${userShare})`)
    }
    this.f = new Faker({ locale: [en], seed: options.seed })
    this.clock = options.clock ?? (() => new Date())
    this.topics = options.topics ?? DEFAULT_TOPICS
    this.userShare = userShare
    const total = mix.create + mix.update + mix.delete
    this.createBelow = mix.create / total
    this.updateBelow = (mix.create + mix.update) / total
    this.hooked = ENTITIES.flatMap((spec) =>
      spec.generator === undefined ? [] : [{ spec, hooks: spec.generator, live: new SwapSet<LiveEntity>() }],
    )
    this.hookedShare = this.hooked.reduce((sum, h) => sum + h.hooks.share, 0)
    if (!(this.hookedShare >= 0 && this.hookedShare < 1)) {
      throw new PipelineError(ErrorCodes.CONFIG_ERROR, `the entities' generator shares must sum below 1`)
    }
    this.context = {
      uuid: () => this.uuid(),
      int: (min, max) => this.f.number.int({ min, max }),
      float: () => this.f.number.float(),
      pick: (items) => items[this.f.number.int(items.length - 1)]!,
      words: (maxChars) => {
        const text = this.f.commerce.productName()
        return text.length <= maxChars ? text : [...text].slice(0, maxChars).join('').trimEnd()
      },
    }
  }

  /** Events generated so far. */
  get generated(): number {
    return this.generatedCount
  }

  /** Users not deleted. */
  get liveUsers(): number {
    return this.users.size
  }

  /** Orders that can still be updated or cancelled. */
  get liveOrders(): number {
    return this.orders.size
  }

  /** The next event to produce. */
  next(): GeneratedEvent {
    // Clock readings never go backwards (NTP steps), so modified_at >= created_at always holds.
    const nowMs = Math.max(this.clock().getTime(), this.lastNowMs)
    this.lastNowMs = nowMs
    const now = new Date(nowMs)
    if (this.hooked.length > 0) {
      // Entities with hooks take their share first; users and orders share the rest as before.
      let pick = this.f.number.float()
      for (const h of this.hooked) {
        if (pick < h.hooks.share) {
          this.generatedCount++
          return this.hookedEvent(h, now)
        }
        pick -= h.hooks.share
      }
    }
    const forUser = this.f.number.float() < this.userShare
    const r = this.f.number.float()
    const op: EventType = r < this.createBelow ? 'CREATE' : r < this.updateBelow ? 'UPDATE' : 'DELETE'
    this.generatedCount++

    if (forUser || this.users.size === 0) {
      if (op === 'CREATE' || this.users.size === 0) return this.userEvent(this.createUser(now), 'CREATE', now)
      const user = this.pick(this.users)
      user.version++
      if (op === 'UPDATE') {
        user.name = this.name()
        return this.userEvent(user, 'UPDATE', now)
      }
      this.deleteUser(user)
      return this.userEvent(user, 'DELETE', now)
    }

    if (op === 'CREATE' || this.orders.size === 0) return this.orderEvent(this.createOrder(now), 'CREATE', now)
    const order = this.pick(this.orders)
    order.version++
    if (op === 'UPDATE') {
      order.status = NEXT_STATUS[order.status]!
      if (order.status === 'DELIVERED') this.retireOrder(order)
      return this.orderEvent(order, 'UPDATE', now)
    }
    order.status = 'CANCELLED'
    this.retireOrder(order)
    return this.orderEvent(order, 'DELETE', now)
  }

  // One event of an entity made by its definition's hooks: CREATE when none is live or the mix says so.
  private hookedEvent(h: HookedEntity, now: Date): GeneratedEvent {
    const r = this.f.number.float()
    const op: EventType = r < this.createBelow ? 'CREATE' : r < this.updateBelow ? 'UPDATE' : 'DELETE'
    const at = now.toISOString()
    let entity: LiveEntity
    let type: EventType
    if (op === 'CREATE' || h.live.size === 0) {
      entity = { id: this.uuid(), fields: h.hooks.create(this.context), createdAt: at, version: 1, slot: -1 }
      h.live.add(entity)
      type = 'CREATE'
    } else {
      entity = this.pick(h.live)
      entity.version++
      type = op
      if (op === 'UPDATE') entity.fields = h.hooks.update(this.context, entity.fields)
      else h.live.remove(entity)
    }
    const event: Record<string, unknown> = {
      event_id: this.uuid(),
      schema_version: SCHEMA_VERSION,
      event_type: type,
      version: entity.version,
      occurred_at: at,
      [h.spec.keyField]: entity.id,
    }
    for (const f of h.spec.fields) {
      if (f.field in entity.fields) event[f.field] = entity.fields[f.field]
      else if (f.field === h.hooks.createdField) event[f.field] = entity.createdAt
      else if (f.rule.kind === 'timestamp') event[f.field] = at
      else if (f.rule.kind === 'boolean' && f.rule.deletedFlag === true) event[f.field] = type === 'DELETE'
    }
    const name = h.spec.entity as Entity
    return {
      entity: name,
      topic: topicOfEntity(name, this.topics),
      key: entity.id,
      event: event as unknown as AnyEvent,
    }
  }

  /** Up to `count` next events. */
  take(count: number): GeneratedEvent[] {
    const out: GeneratedEvent[] = []
    for (let i = 0; i < count; i++) out.push(this.next())
    return out
  }

  private pick<T extends { slot: number }>(set: SwapSet<T>): T {
    return set.items[this.f.number.int(set.size - 1)]!
  }

  // f.string.uuid() is ~10x slower; this draws the same 122 random bits from the seeded generator.
  private uuid(): string {
    const a = this.f.number.int(0xffffffff)
    const b = this.f.number.int(0xffffffff)
    const c = this.f.number.int(0xffffffff)
    const d = this.f.number.int(0xffffffff)
    // Version 4 and variant 10xx bits set as in RFC 9562.
    const bc = hex32((b & 0xffff0fff) | 0x4000)
    const cd = hex32((c & 0x3fffffff) | 0x80000000)
    return `${hex32(a)}-${bc.slice(0, 4)}-${bc.slice(4)}-${cd.slice(0, 4)}-${cd.slice(4)}${hex32(d)}`
  }

  private name(): string {
    const full = this.f.person.fullName()
    return full.length <= LIMITS.nameMaxChars ? full : [...full].slice(0, LIMITS.nameMaxChars).join('').trimEnd()
  }

  private createUser(now: Date): LiveUser {
    const dob = this.f.date.birthdate({ mode: 'age', min: 18, max: 90, refDate: now }).toISOString().slice(0, 10)
    const user: LiveUser = {
      id: this.uuid(),
      name: this.name(),
      dob,
      createdAt: now.toISOString(),
      version: 1,
      slot: -1,
      orders: [],
    }
    this.users.add(user)
    return user
  }

  private deleteUser(user: LiveUser): void {
    this.users.remove(user)
    for (const order of user.orders) this.orders.remove(order)
    user.orders.length = 0
  }

  private createOrder(now: Date): LiveOrder {
    const user = this.pick(this.users)
    const quantity = this.f.number.int({ min: 1, max: 5 })
    const unitCents = this.f.number.int({ min: 199, max: 49_999 })
    const order: LiveOrder = {
      id: this.uuid(),
      user,
      status: 'PLACED',
      quantity,
      // Integer cents / 100 gives the double closest to the 2-decimal amount, whose text has <= 2 decimals.
      total: (quantity * unitCents) / 100,
      placedAt: now.toISOString(),
      version: 1,
      slot: -1,
      userSlot: user.orders.length,
    }
    this.orders.add(order)
    user.orders.push(order)
    return order
  }

  private retireOrder(order: LiveOrder): void {
    this.orders.remove(order)
    const list = order.user.orders
    const last = list.pop()!
    if (last !== order) {
      list[order.userSlot] = last
      last.userSlot = order.userSlot
    }
  }

  private userEvent(user: LiveUser, type: EventType, now: Date): GeneratedEvent {
    const at = now.toISOString()
    const event: UserEvent = {
      event_id: this.uuid(),
      schema_version: SCHEMA_VERSION,
      event_type: type,
      version: user.version,
      occurred_at: at,
      user_id: user.id,
      name: user.name,
      dob: user.dob,
      created_at: user.createdAt,
      modified_at: at,
      is_deleted: type === 'DELETE',
    }
    return { entity: 'user', topic: topicOfEntity('user', this.topics), key: user.id, event }
  }

  private orderEvent(order: LiveOrder, type: EventType, now: Date): GeneratedEvent {
    const at = now.toISOString()
    const event: OrderEvent = {
      event_id: this.uuid(),
      schema_version: SCHEMA_VERSION,
      event_type: type,
      version: order.version,
      occurred_at: at,
      order_id: order.id,
      order_status: order.status,
      user_id: order.user.id,
      quantity: order.quantity,
      order_total: order.total,
      placed_at: order.placedAt,
      modified_at: at,
      is_deleted: type === 'DELETE',
    }
    return { entity: 'order', topic: topicOfEntity('order', this.topics), key: order.id, event }
  }
}
