/** Training or evaluation stopped on request (a round's signal, or another replica of the round stopping). */
export class TrainingAborted extends Error {
  override name = 'TrainingAborted'
}
