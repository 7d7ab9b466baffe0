#!/usr/bin/env node
import './check-node.js'
const { main, runNode } = await import('@dml/node')
main(runNode)
