// npm run build:gemm: assembles packages/trainer/src/wasm-gemm.wat into wasm-gemm-binary.ts (the
// module's bytes, base64), which the trainer loads: no assembler at install or run time.
// The gemm test assembles the text again and checks that the committed bytes are its.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import wabtInit from 'wabt'

const source = fileURLToPath(new URL('../packages/trainer/src/wasm-gemm.wat', import.meta.url))
export const binaryFile = fileURLToPath(new URL('../packages/trainer/src/wasm-gemm-binary.ts', import.meta.url))

/** The TypeScript module holding the assembled bytes of wasm-gemm.wat. */
export async function gemmBinaryModule (): Promise<string> {
  const wabt = await wabtInit()
  const parsed = wabt.parseWat('wasm-gemm.wat', readFileSync(source, 'utf8'), { simd: true, relaxed_simd: true })
  const { buffer } = parsed.toBinary({})
  parsed.destroy()
  return '// Written by npm run build:gemm from wasm-gemm.wat: do not edit.\n' +
    `export const GEMM_WASM = '${Buffer.from(buffer).toString('base64')}'\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(binaryFile, await gemmBinaryModule())
  console.log(`wrote ${binaryFile}`)
}
