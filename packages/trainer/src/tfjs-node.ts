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
