// The engine's counts, in one object that the units add to and that /api/status and /metrics read
// (through the status snapshot): what recovery took, what was refused, and what peers did wrong.
// One per peer; a unit is handed it, and writes only its own names.

/** Events of recovery, counted since the peer started, in the order the status lists them. */
export const RECOVERY_EVENTS = [
  'leaderChanges', 'checkpointsCorrupt', 'leadersDistrusted', 'votesGiven', 'peersJoined', 'peersLost', 'electionsWon',
  'roundsRetried', 'roundsFailed', 'resignations', 'roundsSigned', 'checkpointErrors', 'certificatesRejected'
] as const
export type RecoveryEvent = typeof RECOVERY_EVENTS[number]

export class Counts {
  readonly recovery = Object.fromEntries(RECOVERY_EVENTS.map(e => [e, 0])) as Record<RecoveryEvent, number>
  /** control messages refused, by reason */
  readonly rejectedMessages: Record<string, number> = {}
  /** updates left out of a round this peer led, by reason (work a peer reported it could not do included) */
  readonly rejectedUpdates: Record<string, number> = {}
  /** offences of every peer, by reason */
  readonly offences: Record<string, number> = {}
  /** peers banned */
  bans = 0

  add (event: RecoveryEvent, n = 1): void {
    this.recovery[event] += n
  }

  /** Counts one under `reason` in `bag`; returns its total. */
  static bump (bag: Record<string, number>, reason: string): number {
    bag[reason] = (bag[reason] ?? 0) + 1
    return bag[reason]
  }
}
