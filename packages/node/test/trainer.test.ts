// The peer's local trainer: a shared data set must fit the task as a peer's own data must.
import { expect } from 'chai'
import { diskData, LocalTrainer } from '@dml/node'
import { TASK } from './support/cluster.ts'

describe('the local trainer', function () {
  this.timeout(60_000)
  const mnist = { ...TASK, model: 'mlp', dataset: 'mnist', input: '28x28x1', classes: 10, inputScale: 255 }

  it('loads MNIST for a task of its shape, and refuses a task whose input or classes it does not fit', async () => {
    await new LocalTrainer(diskData({ holdout: 0 })).load(mnist)
    for (const [task, message] of [
      [{ ...mnist, input: '32x32x3' }, /its training set: examples are 28x28x1, the task's input is 32x32x3 \(--input\)/],
      [{ ...mnist, classes: 5 }, /its training set: label 9 is not one of the task's 5 classes 0-4 \(--classes\)/]
    ] as const) {
      let error: Error | undefined
      try { await new LocalTrainer(diskData({ holdout: 0 })).load(task) } catch (err) { error = err as Error }
      expect(error?.name).to.equal('DataError')
      expect(error?.message).to.match(message)
    }
  })
})
