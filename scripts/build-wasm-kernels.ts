// npm run build:wasm-kernels: assembles packages/trainer/src/wasm-kernels.wat into wasm-kernels-binary.ts (the
// module's bytes, base64), which the trainer loads: no assembler at install or run time.
// wasm-kernels.test.ts assembles the text again and checks that the committed bytes are its.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import wabtInit from 'wabt'

const source = fileURLToPath(new URL('../packages/trainer/src/wasm-kernels.wat', import.meta.url))
export const binaryFile = fileURLToPath(new URL('../packages/trainer/src/wasm-kernels-binary.ts', import.meta.url))

/** The TypeScript module holding the assembled bytes of wasm-kernels.wat. */
export async function kernelsBinaryModule (): Promise<string> {
  const wabt = await wabtInit()
  const parsed = wabt.parseWat('wasm-kernels.wat', readFileSync(source, 'utf8'), { simd: true, relaxed_simd: true })
  const { buffer } = parsed.toBinary({})
  parsed.destroy()
  return '// Written by npm run build:wasm-kernels from wasm-kernels.wat: do not edit.\n' +
    `export const WASM_KERNELS = '${Buffer.from(buffer).toString('base64')}'\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(binaryFile, await kernelsBinaryModule())
  console.log(`wrote ${binaryFile}`)
}
