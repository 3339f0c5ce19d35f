import js from '@eslint/js'
import tseslint from 'typescript-eslint'

// kafkajs lives behind the ports of internal/kafka (ports.ts): only that folder imports it, so moving to another client
// touches one folder (docs/design.md, Layout). Two integration tests may use kafkajs itself, for what the pipeline never
// does and the ports therefore do not offer: test/pipeline-dlq.test.ts produces a gzipped decompression bomb with a raw
// producer, test/pipeline-data-loss.test.ts alters a topic's retention (ConfigResourceTypes). test/readme-diagram.test.ts
// checks this list against the code.
export const KAFKAJS_ALLOWED = ['internal/kafka/**', 'test/pipeline-dlq.test.ts', 'test/pipeline-data-loss.test.ts']

const kafkajsOutsidePorts = {
  paths: [
    {
      name: 'kafkajs',
      message:
        'only internal/kafka imports kafkajs: use its ports (KafkaClient, ConsumerGroup, KafkaAdmin, VerifiedSender)',
    },
  ],
  patterns: [
    {
      group: ['kafkajs/*'],
      message:
        'only internal/kafka imports kafkajs: use its ports (KafkaClient, ConsumerGroup, KafkaAdmin, VerifiedSender)',
    },
  ],
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Value imports (no-restricted-imports) and type-only ones (its typescript-eslint twin, which sees `import type`).
    ignores: KAFKAJS_ALLOWED,
    rules: {
      'no-restricted-imports': ['error', kafkajsOutsidePorts],
      '@typescript-eslint/no-restricted-imports': ['error', kafkajsOutsidePorts],
    },
  },
)
