// Shared by the launchers: dml needs Node 22.18+ (libp2p 3, and TypeScript type stripping).
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`dml needs Node.js 22.18 or newer; this is ${process.version}.\n` +
    'In a clone of dml, run it through npm (npx dml-node, npm start): it uses the Node 22 that `npm install` put in node_modules/.bin.\n' +
    'Elsewhere, install Node 22 (https://nodejs.org, or `nvm install 22`).')
  process.exit(2)
}
// V8 keeps compiled code of dml and its dependencies on disk: later starts skip most compiling
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
