#!/usr/bin/env node
import './check-node.js'
const { main, runMonitor } = await import('@dml/node')
main(runMonitor)
