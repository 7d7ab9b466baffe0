// Builds the package that `npm install -g` and `npx` take, in dist/ (or the directory given):
// dml-node and dml-monitor bundled by esbuild with dml's own TypeScript (which Node does not
// type-strip inside node_modules), the dashboard's files beside them, and a package.json whose
// dependencies are those of dml's workspace packages. `npm run package` packs it into a tarball.
import { build } from 'esbuild'
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = resolve(process.argv[2] ?? join(root, 'dist'))
const manifest = (path: string): Record<string, any> => JSON.parse(readFileSync(join(root, path, 'package.json'), 'utf8'))
const top = manifest('.')
const workspaces = (top.workspaces as string[]).map(manifest)

// every dependency of the workspace packages but the workspace packages themselves
const dependencies: Record<string, string> = {}
const optionalDependencies: Record<string, string> = {}
for (const ws of workspaces) {
  for (const [name, range] of Object.entries<string>(ws.dependencies ?? {})) if (!name.startsWith('@dml/')) dependencies[name] = range
  Object.assign(optionalDependencies, ws.optionalDependencies ?? {})
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
await build({
  // the training threads' entry sits beside dml-node.js, where threads.ts looks for it
  entryPoints: { 'dml-node': join(root, 'bin/dml-node.js'), 'dml-monitor': join(root, 'bin/dml-monitor.js'), 'training-thread': join(root, 'packages/trainer/src/training-thread.ts') },
  outdir: out,
  outExtension: { '.js': '.js' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  // Node 20 must still parse the bundle, so that its version check can say what to install
  target: 'node20',
  external: [...Object.keys(dependencies), ...Object.keys(optionalDependencies)],
  logLevel: 'warning'
})
cpSync(join(root, 'packages/node/src/dashboard'), join(out, 'dashboard'), { recursive: true })
cpSync(join(root, 'README.md'), join(out, 'README.md'))
writeFileSync(join(out, 'package.json'), JSON.stringify({
  name: top.name,
  version: top.version,
  description: top.description,
  license: top.license,
  type: 'module',
  bin: { 'dml-node': 'dml-node.js', 'dml-monitor': 'dml-monitor.js' },
  dependencies,
  optionalDependencies
}, null, 2) + '\n')
console.log(`built ${top.name as string} ${top.version as string} in ${out}`)
