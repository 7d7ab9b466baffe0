// One tfjs for the whole process; the node package reaches tfjs through here.
// The union package '@tensorflow/tfjs' is loaded with require: it registers the gradients, the
// chained operations (x.add(y)) and the cpu backend. Imported as an ES module, Node would first
// scan all 7 MB of its CommonJS bundles (WebGL, the converter and tfjs-data included) for the
// names they export: about 0.3 s of every peer's start. The names come from the core and the
// layers API alone, 2.7 MB to scan.
import { createRequire } from 'node:module'
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js'
createRequire(import.meta.url)('@tensorflow/tfjs')
export * from '@tensorflow/tfjs-core'
export * from '@tensorflow/tfjs-layers'
