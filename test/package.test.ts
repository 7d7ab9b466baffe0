// The package as a user installs it: built and packed (npm run package's steps), installed from
// the tarball into an empty directory with the registry, and run from there.
import { expect } from 'chai'
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Node binaries on PATH older than 22.18, which dml itself does not run on: what a user may have. */
function olderNodes (): string[] {
  const found = (process.env.PATH ?? '').split(':').map(d => join(d, 'node')).filter(p => existsSync(p))
  return [...new Set(found)].filter(p => {
    const [major, minor] = execFileSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim().split('.').map(Number)
    return major < 22 || (major === 22 && minor < 18)
  })
}
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

describe('the packed package', function () {
  this.timeout(5 * 60_000)

  it('every dependency\'s install script has been reviewed (allowScripts), so an install under npm\'s strict setting goes through', async () => {
    const { stdout } = await run('npm', ['install-scripts', 'ls'], { cwd: ROOT })
    expect(stdout.trim()).to.equal('No packages with unreviewed install scripts.')
  })

  const dir = mkdtempSync(join(tmpdir(), 'dml-package-'))
  after(() => { rmSync(dir, { recursive: true, force: true }) })

  it('installs from its tarball into an empty directory and runs dml-node there', async () => {
    const dist = join(dir, 'dist')
    await run(process.execPath, [join(ROOT, 'scripts', 'build-package.ts'), dist])
    // libp2p is bundled (one file to load at start), its licence carried beside the bundle
    const manifest = JSON.parse(readFileSync(join(dist, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    expect(manifest.dependencies).to.not.have.property('libp2p')
    expect(manifest.dependencies).to.have.property('@tensorflow/tfjs-core')
    expect(readFileSync(join(dist, 'THIRD-PARTY-LICENSES.md'), 'utf8')).to.match(/^## libp2p \d/m)
    // the npm on PATH, as a user would type it (it may run on an older Node: installing needs none newer)
    const npm = async (args: string[], cwd: string): Promise<string> => (await run('npm', args, { cwd, maxBuffer: 1 << 24 })).stdout
    await npm(['pack', dist, '--pack-destination', dir], ROOT)
    const tarball = readdirSync(dir).find(f => f.endsWith('.tgz'))!
    expect(tarball).to.equal(`dml-node-${VERSION}.tgz`)
    // publish-ready under the name of its command: npm publish goes through, short of sending it
    const published = await run('npm', ['publish', '--dry-run', '--tag', 'test'], { cwd: dist, maxBuffer: 1 << 24 })
    expect(published.stdout + published.stderr).to.include(`dml-node@${VERSION}`)
    const packed = JSON.parse(readFileSync(join(dist, 'package.json'), 'utf8')) as { name: string, engines: Record<string, string>, private?: boolean, dependencies: Record<string, string> }
    expect(packed).to.include({ name: 'dml-node' })
    expect(packed.private).to.equal(undefined)
    expect(packed.engines.node).to.equal('>=20')
    expect(packed.dependencies).to.have.property('node') // its Node 22, for a machine with an older one
    const home = join(dir, 'elsewhere')
    mkdirSync(home)
    // the registry (or npm's cache of it); the optional native backends are not needed to run
    // as the README says: the project lets npm run the install script of the `node` dependency, which places its Node 22
    writeFileSync(join(home, 'package.json'), JSON.stringify({ name: 'elsewhere', private: true, allowScripts: { node: true } }))
    await npm(['install', '--no-audit', '--no-fund', '--omit=optional', '--prefer-offline', join(dir, tarball)], home)
    const bin = join(home, 'node_modules', '.bin', 'dml-node')
    // the README's links into docs/ hold where the package is installed
    const installed = join(home, 'node_modules', 'dml-node')
    for (const link of readFileSync(join(installed, 'README.md'), 'utf8').matchAll(/\]\((docs\/[\w.-]+\.md)[#)]/g)) expect(existsSync(join(installed, link[1])), link[1]).to.equal(true)
    expect((await run(process.execPath, [bin, '--version'], { cwd: home })).stdout.trim()).to.equal(VERSION)
    // on a machine whose Node is older (the one on PATH here is 20): the package's own Node 22 runs it
    for (const old of olderNodes()) {
      expect((await run(old, [bin, '--version'], { cwd: home })).stdout.trim(), `${old} ${process.version}`).to.equal(VERSION)
      expect((await run(old, [join(home, 'node_modules', '.bin', 'dml-monitor'), '--version'], { cwd: home })).stdout.trim()).to.equal(VERSION)
    }
    expect((await run(process.execPath, [bin, 'keygen', '--data-dir', join(home, 'id')], { cwd: home })).stdout.trim()).to.match(/^12D3KooW\w+$/)
    expect((await run(process.execPath, [join(home, 'node_modules', '.bin', 'dml-monitor'), '--help'], { cwd: home })).stdout).to.include('Usage: dml-monitor')
    // a short training on two threads: the bundle finds its training threads' entry and MNIST
    const trained = await run(process.execPath, [bin, '--data-dir', join(home, 'train'), '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--no-mdns',
      '--threads', '2', '--rounds', '1', '--local-epochs', '0.05', '--eval-samples', '500', '--exit-when-done', '--json-logs'], { cwd: home, maxBuffer: 1 << 24 })
    const events = trained.stdout.trim().split('\n').map(line => JSON.parse(line) as { event: string, threads?: number, accuracy?: number })
    expect(events.find(e => e.event === 'threads')?.threads).to.equal(2)
    expect(events.find(e => e.event === 'training-finished')?.accuracy).to.be.above(0.5)
  })
})
