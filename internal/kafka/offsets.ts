import type { KafkaAdmin } from './ports.js'

/** How far a consumer group is through some topics: their total end offsets and the group's committed total. */
export interface GroupProgress {
  end: number
  committed: number
  /** Members of the group (0: nobody is consuming). */
  members: number
}

/** Reads a group's committed offsets and the topics' end offsets (missing topics count as empty). */
export async function groupProgress(admin: KafkaAdmin, groupId: string, topics: string[]): Promise<GroupProgress> {
  const existing = new Set(await admin.listTopics())
  const present = topics.filter((t) => existing.has(t))
  let end = 0
  let committed = 0
  for (const topic of present) {
    for (const p of await admin.fetchTopicOffsets(topic)) end += Number(p.high)
  }
  if (present.length > 0) {
    for (const t of await admin.fetchOffsets({ groupId, topics: present })) {
      // -1: nothing committed yet in that partition.
      for (const p of t.partitions) committed += Math.max(0, Number(p.offset))
    }
  }
  const { groups } = await admin.describeGroups([groupId])
  const members = groups[0]?.state === 'Stable' ? groups[0].members.length : 0
  return { end, committed, members }
}
