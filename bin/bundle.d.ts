/** The URL of the fresh bundle of `name` (dml-node, dml-monitor) in the clone at `root`, if there is one (bundle.js). */
export function freshBundle (name: string, root?: string): string | undefined
