#!/usr/bin/env node
import './check-node.js'
import { freshBundle } from './bundle.js'
await import(freshBundle('dml-node') ?? './run/dml-node.js')
