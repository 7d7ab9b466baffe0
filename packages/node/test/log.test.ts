// The logger's levels, and the recent events the status and the dashboard show.
import { expect } from 'chai'
import { PassThrough } from 'node:stream'
import { createLogger, recordingTo, RecentEvents } from '@dml/node'

describe('logging', () => {
  it('as text, warnings go to their own stream (stderr), the rest to stdout; as JSON, all in one', () => {
    const [out, errors] = [new PassThrough(), new PassThrough()]
    const log = createLogger(false, '[t]', out, 'info', errors)
    log.info('round-done', {}, 'round 1 done')
    log.warn('gpu-unavailable', {}, '--gpu was asked for but could not be loaded')
    expect(String(out.read())).to.match(/\[t\] round 1 done\n$/)
    expect(String(errors.read())).to.match(/\[t\] WARN --gpu was asked for/)
    const json = new PassThrough()
    const jsonLog = createLogger(true, '[t]', json)
    jsonLog.info('a', {}, 'a')
    jsonLog.warn('b', {}, 'b')
    expect(String(json.read()).trim().split('\n').map(l => (JSON.parse(l) as { event: string }).event)).to.deep.equal(['a', 'b'])
  })

  it('at level warn, only warnings are written', () => {
    const out = new PassThrough()
    const log = createLogger(true, '[t]', out, 'warn')
    log.info('round-done', { round: 1 }, 'round 1 done')
    log.warn('peer-lost', { peer: 'x' }, 'peer x lost')
    const lines = String(out.read()).trim().split('\n').map(l => JSON.parse(l) as { event: string })
    expect(lines.map(l => l.event)).to.deep.equal(['peer-lost'])
  })

  it('keeps the latest notable events and every warning, at most as many as asked', () => {
    const recent = new RecentEvents(3)
    const log = recordingTo(createLogger(false, '[t]', new PassThrough(), 'info', new PassThrough()), recent)
    log.info('train-progress', {}, 'round 1: 10%') // not notable
    log.info('leader-elected', {}, 'elected')
    log.warn('update-rejected', {}, 'rejected')
    log.info('round-done', {}, 'round 1 done')
    log.info('peer-joined', {}, 'joined')
    expect(recent.list().map(e => e.event)).to.deep.equal(['update-rejected', 'round-done', 'peer-joined'])
  })
})
