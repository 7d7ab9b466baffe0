// In a clone, dml-node and dml-monitor run the bundle that `npm install` built in dist/ (the
// package's own build, scripts/build-package.ts) while it is newer than every file it was built
// from: Node then reads a few files instead of type-stripping hundreds, which cost 5-6 s before
// the first round on two cores. Sources edited since run as they are; DML_FROM_SOURCES=1 runs
// them always.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const clone = fileURLToPath(new URL('..', import.meta.url))

/** The newest modification time of the files under `path`. */
function newest (path) {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest = stat.mtimeMs // a file deleted
  for (const name of readdirSync(path)) if (name !== 'node_modules') latest = Math.max(latest, newest(join(path, name)))
  return latest
}

/** The URL of the fresh bundle of `name` (dml-node, dml-monitor) in the clone at `root`, if there is one. */
export function freshBundle (name, root = clone) {
  if (process.env.DML_FROM_SOURCES === '1') return undefined
  const bundle = join(root, 'dist', `${name}.js`)
  if (!existsSync(bundle)) return undefined
  const built = statSync(bundle).mtimeMs
  const sources = [join(root, 'bin'), join(root, 'package-lock.json'), join(root, 'scripts', 'build-package.ts'),
    ...readdirSync(join(root, 'packages')).flatMap(p => [join(root, 'packages', p, 'src'), join(root, 'packages', p, 'package.json')])]
  return sources.every(s => newest(s) <= built) ? pathToFileURL(bundle).href : undefined
}
