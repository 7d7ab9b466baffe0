// npm install (npm's prepare): builds the bundle in dist/ that dml-node and dml-monitor run in a
// clone (bin/bundle.js). Plain JavaScript, so that any Node can run it; without Node 22.18, or if
// the build fails, the clone runs its sources and npm install goes on.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`dml: not bundling dml-node (Node ${process.version}; the bundle is built with 22.18 or newer): it runs from its sources`)
} else {
  const script = fileURLToPath(new URL('build-package.ts', import.meta.url))
  const built = spawnSync(process.execPath, [script], { stdio: 'inherit' })
  if (built.status !== 0) console.error('dml: the bundle could not be built (see above): dml-node runs from its sources')
}
