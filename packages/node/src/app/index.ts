// The commands: dml-node and its subcommands, dml-monitor, their options, and what they stand on
// (the status server and its metrics, identities, data directories, errors a user is told of).
// Nothing in the engine (the library, '@dml/node') imports this.
export * from './cli.ts'
export * from './config.ts'
export * from './data-dir.ts'
export * from './errors.ts'
export * from './identity.ts'
export * from './metrics.ts'
export * from './model-commands.ts'
export * from './monitor.ts'
export * from './monitor-view.ts'
export * from './peer.ts'
export * from './status.ts'
