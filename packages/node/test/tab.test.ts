// What a browser tab takes from its node, checked before it is trusted: the data set's bytes
// (data-wire.ts), and the addresses it dials (host.ts).
import { expect } from 'chai'
import { canDialFromBrowser, dialableFrom, isWebRTC, tabAddrOrder } from '@dml/node'
import { gzipSync } from 'node:zlib'
import { TASK } from './support/cluster.ts'
import { decodeImageSet, encodeImageSet } from '../src/tab/data-wire.ts'
import { ownFiles } from '../src/tab/tab.ts'
import { backendOrder } from '../src/tab/backend-order.ts'

const SET = { images: Uint8Array.from({ length: 3 * 4 }, (_, i) => i * 20), labels: Uint8Array.from([0, 2, 1]), count: 3, exampleShape: [2, 2, 1], numClasses: 3, scale: 255 }

/** The encoded set with its header replaced by `header` (the rest kept). */
function withHeader (header: unknown, rest = encodeImageSet(SET).slice(4 + new DataView(encodeImageSet(SET).buffer).getUint32(0))): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(4 + json.byteLength + rest.byteLength)
  new DataView(out.buffer).setUint32(0, json.byteLength)
  out.set(json, 4)
  out.set(rest, 4 + json.byteLength)
  return out
}

describe('a tab\'s data set from its node', () => {
  it('comes through whole: uint8 pixels and float values', () => {
    expect(decodeImageSet(encodeImageSet(SET))).to.deep.equal(SET)
    const floats = { ...SET, images: Float32Array.from({ length: 12 }, (_, i) => i / 3), scale: 1 }
    expect(decodeImageSet(encodeImageSet(floats))).to.deep.equal(floats)
  })

  it('is refused, with a reason, when its bytes and its header disagree or its header lies', () => {
    const header = { count: 3, exampleShape: [2, 2, 1], numClasses: 3, scale: 255, values: 'uint8' }
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(2), /no header/],
      [Uint8Array.from([0, 0, 0x10, 0, 1, 2]), /a header of 4096 bytes/],
      [withHeader('not an object'), /count undefined/],
      [encodeImageSet(SET).slice(0, -1), /bytes, where its header makes/],
      [withHeader({ ...header, count: 4 }), /where its header makes/],
      [withHeader({ ...header, count: 1e12 }), /count 1000000000000/],
      [withHeader({ ...header, exampleShape: [2, -2, 1] }), /example shape/],
      [withHeader({ ...header, exampleShape: [1 << 20, 1 << 20] }), /values an example/],
      [withHeader({ ...header, numClasses: 2 }), /a label of 2 classes or more/],
      [withHeader({ ...header, scale: Number.NaN }), /scale null/],
      [withHeader({ ...header, values: 'int64' }), /values of type int64/]
    ]
    for (const [bytes, reason] of cases) {
      expect(() => decodeImageSet(bytes), String(reason)).to.throw(reason)
      try { decodeImageSet(bytes) } catch (err) { expect((err as Error).name).to.equal('DataWireError') }
    }
    const nan = encodeImageSet({ ...SET, images: Float32Array.from({ length: 12 }, (_, i) => i === 5 ? Number.NaN : i), scale: 1 })
    expect(() => decodeImageSet(nan)).to.throw(/not a finite number/)
  })
})

describe('the backend a tab trains on', () => {
  const none = { webgpu: { none: 'this browser has none' } }
  it('a real GPU through WebGPU first, then through WebGL, then wasm, then plain JavaScript', () => {
    expect(backendOrder({ webgpu: { name: 'nvidia ampere', fallback: false }, webglRenderer: 'ANGLE (NVIDIA GeForce RTX 3060)' }))
      .to.deep.equal({ candidates: ['webgpu', 'webgl', 'wasm', 'cpu'], skipped: [] })
    expect(backendOrder({ ...none, webglRenderer: 'ANGLE (Intel UHD 620)' }))
      .to.deep.equal({ candidates: ['webgl', 'wasm', 'cpu'], skipped: ['webgpu: this browser has none'] })
  })

  it('a software GPU is passed over, saying why: WebGPU\'s fallback adapter, SwiftShader, llvmpipe', () => {
    const order = backendOrder({ webgpu: { name: 'google swiftshader', fallback: true }, webglRenderer: 'ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)))' })
    expect(order.candidates).to.deep.equal(['wasm', 'cpu'])
    expect(order.skipped).to.deep.equal(['webgpu: google swiftshader is a software fallback', 'webgl: ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero))) is a software renderer'])
    expect(backendOrder({ webgpu: { name: 'mesa llvmpipe', fallback: false } }).candidates).to.deep.equal(['wasm', 'cpu'])
    expect(backendOrder({ webgpu: { name: '', fallback: true } }).skipped[0]).to.equal('webgpu: the adapter is a software fallback')
  })

  it('?backend= names one to try alone, even a software one; an unknown name is ignored', () => {
    expect(backendOrder({ webgpu: { name: 'swiftshader', fallback: true } }, 'webgpu').candidates).to.deep.equal(['webgpu'])
    expect(backendOrder(none, 'cpu').candidates).to.deep.equal(['cpu'])
    expect(backendOrder(none, 'cuda').candidates).to.deep.equal(['wasm', 'cpu'])
  })
})

describe('the addresses a tab dials', () => {
  it('a node\'s WebSockets addresses at the host name its page came from', () => {
    const addrs = ['/ip4/0.0.0.0/tcp/4100/ws/p2p/12D3KooWA', '/ip4/10.0.0.5/tcp/4100/ws/p2p/12D3KooWA']
    expect(dialableFrom(addrs, '192.168.1.7')).to.deep.equal(['/ip4/192.168.1.7/tcp/4100/ws/p2p/12D3KooWA'])
    expect(dialableFrom(addrs, 'lab.example')).to.deep.equal(['/dns4/lab.example/tcp/4100/ws/p2p/12D3KooWA'])
    expect(dialableFrom(addrs, '[::1]')).to.deep.equal(['/ip6/::1/tcp/4100/ws/p2p/12D3KooWA'])
  })

  it('only addresses a browser has a transport for: WebSockets and relays\' circuits, not TCP', () => {
    expect(canDialFromBrowser('/ip4/127.0.0.1/tcp/4100/ws')).to.equal(true)
    expect(canDialFromBrowser('/dns4/lab.example/tcp/443/wss')).to.equal(true)
    expect(canDialFromBrowser('/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWR/p2p-circuit')).to.equal(true)
    expect(canDialFromBrowser('/ip4/127.0.0.1/tcp/4001')).to.equal(false)
    expect(canDialFromBrowser('/ip4/127.0.0.1/tcp/4001/wsx')).to.equal(false)
    expect(canDialFromBrowser('/ip4/1.2.3.4/tcp/4100/ws/p2p/12D3KooWR/p2p-circuit/webrtc')).to.equal(true)
  })

  it('a tab announces first what another tab uses best: WebRTC through a relay it reaches over WebSockets, then that relay\'s circuit', () => {
    const ws = '/ip4/10.0.0.5/tcp/4100/ws/p2p/12D3KooWR/p2p-circuit'
    const tcp = '/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWR/p2p-circuit'
    expect(tabAddrOrder([`${tcp}/p2p/T`, `${tcp}/webrtc/p2p/T`, `${ws}/p2p/T`, `${ws}/webrtc/p2p/T`]))
      .to.deep.equal([`${ws}/webrtc/p2p/T`, `${ws}/p2p/T`, `${tcp}/webrtc/p2p/T`, `${tcp}/p2p/T`])
    expect(isWebRTC(`${ws}/webrtc/p2p/T`)).to.equal(true)
    expect(isWebRTC(`${ws}/p2p/T`)).to.equal(false)
    expect(isWebRTC('/ip4/10.0.0.5/udp/4001/webrtc-direct')).to.equal(false)
  })
})

describe('files a tab\'s user picks', () => {
  const task = { ...TASK, input: '2', classes: 2 }
  const csv = ['label,a,b', ...Array.from({ length: 20 }, (_, i) => `${i % 2},${i},${i / 2}`)].join('\n')

  it('a CSV, plain or gzipped: its examples, a tenth kept to evaluate on', async () => {
    for (const bytes of [new TextEncoder().encode(csv), gzipSync(csv)]) {
      const data = await ownFiles([new File([bytes], 'mine.csv')], task)
      expect(data.own).to.equal(true)
      expect(data.train.count).to.equal(20)
      expect(data.trainable.length + (data.evalExamples as Uint32Array).length).to.equal(20)
      expect((data.evalExamples as Uint32Array).length).to.equal(2)
    }
  })

  it('anything else is refused with what to pick, or why the files do not fit the task', async () => {
    const refused = async (files: File[]): Promise<string> => await ownFiles(files, task).then(() => 'accepted', (err: Error) => `${err.name}: ${err.message}`)
    expect(await refused([new File(['x'], 'photo.png')])).to.match(/^DataError: pick an IDX images file and its labels file .*not photo\.png/)
    expect(await refused([new File([csv.replace('label,a,b', 'label,a')], 'mine.csv')])).to.match(/^DataError: mine\.csv: /)
    expect(await refused([new File([csv.replaceAll('\n1,', '\n7,')], 'mine.csv')])).to.match(/^DataError: your files: label 7 is not one of the task's 2 classes/)
    expect(await refused([new File([Uint8Array.from([0x1f, 0x8b, 1, 2, 3])], 'broken.csv.gz')])).to.match(/^DataError: broken\.csv\.gz: not valid gzip/)
    expect(await refused([new File(['label,a,b\n0,1,2\n1,3,4'], 'two.csv')])).to.match(/^DataError: your files hold 2 examples: too few to keep a tenth to evaluate on/)
  })
})
