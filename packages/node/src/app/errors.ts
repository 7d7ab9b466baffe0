// Errors that are the user's to fix, not dml's: a wrong option, a missing file, data that is not
// what it says. Each says what is wrong in one line; `expected` tells the commands (app/cli.ts
// main) to print that line and exit 2, where any other error prints its stack and exits 1.

/** An error a command states in one line: the user's input is wrong, nothing in dml failed. */
export interface ExpectedError extends Error {
  readonly expected: true
}

export function isExpected (err: unknown): err is ExpectedError {
  return err instanceof Error && (err as Partial<ExpectedError>).expected === true
}

/** A wrong option, option value, config file or data directory. */
export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly expected = true
}
