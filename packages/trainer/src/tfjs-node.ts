// tfjs in Node. The union package '@tensorflow/tfjs' is loaded with require: it registers the
// gradients, the chained operations (x.add(y)) and the cpu backend. Its names are taken from the
// CommonJS exports object, not imported as an ES module: to import it, Node first scans the
// CommonJS bundles for the names they export (2.7 MB for the core and the layers API), which took
// longer than loading tfjs itself (160-300 ms, in every thread that loads it).
import { createRequire } from 'node:module'
import type * as Core from '@tensorflow/tfjs-core'
import type * as Layers from '@tensorflow/tfjs-layers'
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js'

export const wholeTfjs = createRequire(import.meta.url)('@tensorflow/tfjs') as typeof Core & typeof Layers

// tfjs's cpu backend greets its first tensor in Node with a banner that says to install
// tfjs-node: dml picks its backend itself (tfjs-node where it is installed, else wasm) and says
// which in its log, so the banner is only noise on the first line of every command. The engine
// makes a new cpu backend each time it initialises one: each is made without it (if this tfjs
// still makes them this way; else the banner stays, and nothing else changes)
const registry = (wholeTfjs.engine() as unknown as { registryFactory?: Record<string, { factory: () => unknown } | undefined> }).registryFactory
const cpu = registry?.cpu
if (cpu !== undefined) {
  const make = cpu.factory
  cpu.factory = () => {
    const backend = make() as { firstUse?: boolean }
    backend.firstUse = false
    return backend
  }
}
