// One tfjs for the whole process; the node package reaches tfjs through here.
// The union package '@tensorflow/tfjs' is loaded with require: it registers the gradients, the
// chained operations (x.add(y)) and the cpu backend. Imported as an ES module, Node would first
// scan all 7 MB of its CommonJS bundles (WebGL, the converter and tfjs-data included) for the
// names they export. The names come from the core and the layers API alone, 2.7 MB to scan:
// loading tfjs takes 315-365 ms this way, 355-425 ms imported whole (one process each, 2 cores).
import { createRequire } from 'node:module'
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js'
createRequire(import.meta.url)('@tensorflow/tfjs')
export * from '@tensorflow/tfjs-core'
export * from '@tensorflow/tfjs-layers'
