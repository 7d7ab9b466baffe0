// What a node is made of: its configuration (from the command line, see app/config.ts) and the
// parts it is handed (the network, the trainer, the stores, the clock).
import type { Compression, Device, Task } from '@dml/protocol'
import type { SavedVote } from '../state/checkpoint.ts'
import type { Signer } from '../proof/certificates.ts'
import type { Clock } from '../clock.ts'
import type { Logger } from '../log.ts'
import type { Network } from '../net/network.ts'
import type { CheckpointStore } from '../state/replica.ts'
import type { Trainer } from '../round/trainer.ts'

export interface NodeConfig {
  task: Task
  minPeers: number
  /** --bootstrap was given: others exist to be heard before a fresh peer stands (see Election.expectsPeers) */
  expectsPeers?: boolean
  /** --shard: train this slice instead of the assigned one */
  shard: [number, number] | null
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  /** deadline of one transfer from one source */
  transferTimeoutMs: number
  /** the size of this task's model blob (every model and update of the task has it): the most a transfer of one may bring */
  modelBytes: number
  /** --compression: how this peer sends its updates (default none: whole float32 weights) */
  compression?: Compression
  /**
   * --threads 0: the trainer's threads are the machine's cores, shared with the other peers on
   * this machine (coreShare); else every round trains on all of them
   */
  shareCores?: boolean
}

export interface BackendInfo {
  backend: string
  device: Device
  source: string
  warning?: string
}

export interface NodeDeps {
  net: Network
  trainer: Trainer
  backend: BackendInfo
  log: Logger
  store: CheckpointStore
  /** where this peer's votes are written before they are sent (DataDirStore); none: not kept */
  votes?: { saveVote: (vote: SavedVote) => Promise<void> }
  signer: Signer
  /** --allow-peers: the ids allowed to take part; undefined for an open network */
  allowed?: ReadonlySet<string>
  clock?: Clock
}

/** The most a model or update transfer may bring: the task's model, with room for a different encoding of the same shapes. */
export function maxBlobBytes (config: NodeConfig): number {
  return config.modelBytes + 4096
}
