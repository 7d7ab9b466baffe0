#!/usr/bin/env node
// dml-node itself, from the sources: the entry the package's bundle is built from (scripts/build-package.ts)
import '../check-node.js'
const { main, runNode } = await import('@dml/node/cli')
main(runNode)
