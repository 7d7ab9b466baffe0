// The package as a user installs it: built and packed (npm run package's steps), installed from
// the tarball into an empty directory with the registry, and run from there.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

describe('the packed package', function () {
  this.timeout(5 * 60_000)
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
    expect(tarball).to.equal(`dml-${VERSION}.tgz`)
    const home = join(dir, 'elsewhere')
    mkdirSync(home)
    // the registry (or npm's cache of it); the optional native backends are not needed to run
    await npm(['install', '--no-audit', '--no-fund', '--omit=optional', '--prefer-offline', join(dir, tarball)], home)
    const bin = join(home, 'node_modules', '.bin', 'dml-node')
    // the README's links into docs/ hold where the package is installed
    const installed = join(home, 'node_modules', 'dml')
    for (const link of readFileSync(join(installed, 'README.md'), 'utf8').matchAll(/\]\((docs\/[\w.-]+\.md)[#)]/g)) expect(existsSync(join(installed, link[1])), link[1]).to.equal(true)
    expect((await run(process.execPath, [bin, '--version'], { cwd: home })).stdout.trim()).to.equal(VERSION)
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
