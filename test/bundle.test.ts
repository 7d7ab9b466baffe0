// A clone runs the bundle npm install built while no file it was built from is newer (bin/bundle.js).
import { expect } from 'chai'
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshBundle as fresh } from '../bin/bundle.js'

describe('a clone runs its bundle', () => {
  let root: string
  const at = (path: string, seconds: number): void => { utimesSync(join(root, path), seconds, seconds) }
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'dml-clone-'))
    for (const dir of ['bin', 'dist', 'scripts', 'packages/node/src/app/dashboard']) mkdirSync(join(root, dir), { recursive: true })
    for (const file of ['bin/dml-node.js', 'package-lock.json', 'scripts/build-package.ts', 'packages/node/package.json', 'packages/node/src/app/cli.ts', 'packages/node/src/app/dashboard/index.html']) writeFileSync(join(root, file), '')
    for (const path of ['bin', 'bin/dml-node.js', 'package-lock.json', 'scripts/build-package.ts', 'packages/node/package.json', 'packages/node/src', 'packages/node/src/app', 'packages/node/src/app/cli.ts', 'packages/node/src/app/dashboard', 'packages/node/src/app/dashboard/index.html']) at(path, 1000)
  })

  it('while it is newer than every source, and not without one', () => {
    expect(fresh('dml-node', root)).to.equal(undefined)
    writeFileSync(join(root, 'dist/dml-node.js'), '')
    at('dist/dml-node.js', 2000)
    expect(fresh('dml-node', root)).to.match(/^file:.*\/dist\/dml-node\.js$/)
    expect(fresh('dml-monitor', root)).to.equal(undefined)
  })

  it('not once a source, the dashboard or the lock file changed since it was built, nor with DML_FROM_SOURCES=1', () => {
    writeFileSync(join(root, 'dist/dml-node.js'), '')
    at('dist/dml-node.js', 2000)
    for (const path of ['packages/node/src/app/dashboard/index.html', 'package-lock.json', 'bin/dml-node.js']) {
      at(path, 3000)
      expect(fresh('dml-node', root), path).to.equal(undefined)
      at(path, 1000)
    }
    expect(fresh('dml-node', root)).to.not.equal(undefined)
    process.env.DML_FROM_SOURCES = '1'
    try {
      expect(fresh('dml-node', root)).to.equal(undefined)
    } finally {
      delete process.env.DML_FROM_SOURCES
    }
  })
})
