// Shared by the launchers: dml needs Node 22.18+ (libp2p 3, and TypeScript type stripping). On an
// older Node, the launcher runs itself again on the Node 22 of the `node` package beside it (the
// clone's dev dependency, the installed package's dependency), if npm placed its binary; else it
// says what to do.
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** The binary the `node` package placed at install (its preinstall script), if it did. */
function packagedNode () {
  try {
    const dir = dirname(createRequire(import.meta.url).resolve('node/package.json'))
    return [join(dir, 'bin', 'node'), join(dir, 'bin', 'node.exe')].find(existsSync)
  } catch {
    return undefined // no `node` package here
  }
}

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  const node22 = packagedNode()
  // once only: a `node` package of an old Node would send it round again
  if (node22 !== undefined && process.env.DML_FROM_NODE_PACKAGE !== '1') {
    const { spawn } = await import('node:child_process')
    const { constants } = await import('node:os')
    const child = spawn(node22, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, DML_FROM_NODE_PACKAGE: '1' } })
    // a terminal's Ctrl-C reaches the child itself; a signal sent to this process alone is passed on
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.on(signal, () => { if (signal !== 'SIGINT' || process.stdin.isTTY !== true) child.kill(signal) })
    }
    const code = await new Promise(resolve => {
      child.on('error', (err) => { console.error(`could not run dml on ${node22}: ${err.message}`); resolve(2) })
      child.on('exit', (exitCode, signal) => { resolve(exitCode ?? 128 + (constants.signals[signal] ?? 0)) })
    })
    process.exit(code)
  }
  console.error(`dml needs Node.js 22.18 or newer; this is ${process.version}.\n` +
    'In a clone of dml, run it through npm (npx dml-node, npm start): it uses the Node 22 that `npm install` put in node_modules/.bin.\n' +
    'An installed dml-node brings its Node 22 when npm may run the install script of its `node` dependency (npm install --allow-scripts=node dml-node).\n' +
    'Else, install Node 22 (https://nodejs.org, or `nvm install 22`).')
  process.exit(2)
}
// V8 keeps compiled code of dml and its dependencies on disk: later starts skip most compiling
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
