#!/usr/bin/env node
// `npx dml-monitor` in a clone. npm links a workspace's bins into node_modules/.bin, where npx runs them at
// once; a bin of the clone's root package made npx load the whole dependency tree first, about
// 0.4 s every launch. This is that bin, from the clone's bin/.
import '../../../bin/dml-monitor.js'
