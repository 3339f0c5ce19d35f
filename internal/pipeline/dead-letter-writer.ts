import type { Producer } from 'kafkajs'
import type { DeadLetter, DeadLetterWriter } from './batch-processor.js'
import { buildDlqMessage, dlqTopicFor } from './dlq.js'
import { PipelineError } from '../errors/index.js'

const bytes = (u: Uint8Array | null): Buffer | null =>
  u === null ? null : Buffer.from(u.buffer, u.byteOffset, u.length)

/** Produces dead letters to `<source topic>.dlq` with an idempotent, acks=all producer. */
export class KafkaDeadLetterWriter implements DeadLetterWriter {
  constructor(private readonly producer: Producer) {}

  async send(letters: DeadLetter[]): Promise<void> {
    const byTopic = new Map<string, ReturnType<typeof buildDlqMessage>[]>()
    for (const l of letters) {
      const topic = dlqTopicFor(l.message.topic)
      const message = buildDlqMessage({
        original: { ...l.message, key: bytes(l.message.key), value: bytes(l.message.value) },
        error: new PipelineError(l.code, l.error),
        attempts: l.attempts,
        firstFailureAt: l.firstFailureAt,
        lastFailureAt: l.lastFailureAt,
      })
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), message])
    }
    await this.producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    })
  }
}
