/**
 * 2: leaders and rounds are proven by certificates (votes, signatures of a round's participants);
 * 5: heartbeats say how often they come; 6: a round is checked and signed by its checkers (roundCheckers);
 * 7: every message carries its author's message clock (seq), and a round start fixes its checkers,
 * drawn from the round's members (the pool, carried in the round result);
 * 8: a task and a round result carry their strategy as one record (StrategySpec);
 * 9: a round result names the start it closes by that start's deadline (a retried round starts again),
 *    and a heartbeat's device may be "browser" (a tab: a peer that never coordinates).
 */
export const PROTOCOL_VERSION = 9
/** gossipsub topic for every control message. */
export const CONTROL_TOPIC = '/dml/1/control'
/** libp2p stream protocol that serves blobs (models and updates) by content hash. */
export const BLOB_PROTOCOL = '/dml/blob/1.0.0'
/**
 * The longest interval between a peer's heartbeats that others accept (Heartbeat.everyMs): a
 * member is dropped after a few intervals of silence, so this bounds how long a dead peer that
 * claimed a long interval is still counted.
 */
export const MAX_HEARTBEAT_EVERY_MS = 60_000
/** Control messages are small; gossipsub silently drops anything over 4 MiB anyway. */
export const MAX_CONTROL_BYTES = 64 * 1024
/** Blobs move in chunks of this size over the blob protocol, never over gossip. */
export const CHUNK_BYTES = 1024 * 1024
/**
 * Most peers one round trains with. A RoundStart names each of them, and it must fit in one
 * control message; in a larger network the coordinator takes turns (see allocation).
 */
export const MAX_ROUND_PEERS = 256
/**
 * Most participants of a round that check its result and sign it in an open network: enough that
 * no single liar decides, few enough that checking (fetching every update) does not grow with the
 * network. A permissioned network's quorum is of its members, so there every participant checks.
 */
export const MAX_ROUND_CHECKERS = 7
/** Most members a certificate may name (votes, an electorate). */
export const MAX_MEMBERS = 1024
/**
 * How far past the highest certified term a vote may go: room for failed elections, and the
 * bound that keeps a liar from pushing anyone's term to a value it cannot represent.
 */
export const MAX_TERM_STEP = 64
/** Local optimizers a task may name (the trainer implements them): its state starts afresh each round. */
export const LOCAL_OPTIMIZERS = ['sgd', 'momentum', 'adam'] as const
/** Server optimizers a task and a round result may name: none (FedAvg), momentum (FedAvgM), adam (FedAdam). */
export const SERVER_OPTIMIZERS = ['none', 'momentum', 'adam'] as const
/** Largest model blob accepted (a 64M-parameter float32 model). */
export const MAX_BLOB_BYTES = 256 * 1024 * 1024
