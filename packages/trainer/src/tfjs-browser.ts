// tfjs in a browser tab (package.json's imports, condition "browser"): the bundler takes the union
// package as the ES module it also ships, with the webgl and cpu backends.
import * as tfjs from '@tensorflow/tfjs'
import type * as Core from '@tensorflow/tfjs-core'
import type * as Layers from '@tensorflow/tfjs-layers'

export const wholeTfjs = tfjs as unknown as typeof Core & typeof Layers
