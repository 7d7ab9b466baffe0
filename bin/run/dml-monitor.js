#!/usr/bin/env node
// dml-monitor itself, from the sources: the entry the package's bundle is built from (scripts/build-package.ts)
import '../check-node.js'
const { main, runMonitor } = await import('@dml/node/cli')
main(runMonitor)
