// The library: the engine and its units, by concern (docs/architecture.md draws them):
//   engine/    DmlNode, the wiring: its config, the gate of its control topic, heartbeats, status
//   election/  who leads: the rules, votes, claims, the term this peer leads, the watchdog
//   round/     a round: the leader's coordinator, its state, roster and updates; worker, verifier
//   state/     what a peer holds: its replica, the members, the ledger of offences, counts, checkpoints
//   proof/     certificates of terms and rounds, and the proofs a peer checks
//   net/       the network port, the libp2p host, the dialer, blob transfer, the private network
// The commands (dml-node, dml-monitor, their options, the status server, identities and data
// directories) are '@dml/node/cli' (app/); process launchers for tests and the demo
// '@dml/node/launcher'. Nothing here imports app/.
export * from './clock.ts'
export * from './log.ts'
export * from './engine/node.ts'
export * from './engine/node-config.ts'
export * from './engine/node-status.ts'
export * from './engine/gate.ts'
export * from './engine/heartbeats.ts'
export * from './election/election.ts'
export * from './election/leadership.ts'
export * from './election/leader-claims.ts'
export * from './election/leader-watchdog.ts'
export * from './election/voting.ts'
export * from './round/allocation.ts'
export * from './round/coordinator.ts'
export * from './round/progress.ts'
export * from './round/roster.ts'
export * from './round/round-follower.ts'
export * from './round/round-state.ts'
export * from './round/trainer.ts'
export * from './round/disk-data.ts'
export * from './round/update-check.ts'
export * from './round/update-collector.ts'
export * from './round/verifier.ts'
export * from './round/worker.ts'
export * from './state/checkpoint.ts'
export * from './state/counts.ts'
export * from './state/membership.ts'
export * from './state/misbehaviour.ts'
export * from './state/replica.ts'
export * from './proof/certificates.ts'
export * from './proof/proofs.ts'
export * from './proof/proven.ts'
export * from './net/admission.ts'
export * from './net/blob-transfer.ts'
export * from './net/dialer.ts'
export * from './net/host.ts'
export * from './net/network.ts'
export * from './net/private-network.ts'
