// The commands: dml-node and its subcommands, dml-monitor, their options. Nothing in the engine
// (the library, '@dml/node') imports this.
export * from './cli.ts'
export * from './config.ts'
export * from './model-commands.ts'
export * from './monitor.ts'
export * from './monitor-view.ts'
