// A node's examples, from disk: its own (--data, with --holdout of them kept to evaluate on), or a
// built-in data set's training and test sets.
import { checkFits, holdoutSplit, loadDataset, loadOwnData } from '@dml/trainer'
import type { Task } from '@dml/protocol'
import { dataShape, ownExamples, type DataLoader } from './trainer.ts'

/** Where a peer's examples come from: its own (--data), or its part of a shared data set. */
export interface DataSource {
  /** --data: this peer's own examples; undefined: the task's shared data set */
  own?: string
  /** --holdout: the fraction of this peer's training examples kept out of training to evaluate on */
  holdout: number
}

export function diskData (source: DataSource): DataLoader {
  return {
    key: (task) => `${source.own ?? task.dataset} ${task.input} ${task.classes} ${task.inputScale}`,
    load: async (task: Task) => {
      const shape = dataShape(task)
      const holdout = source.holdout
      if (source.own !== undefined) {
        return ownExamples(await loadOwnData(source.own, shape), holdout, (count) => `--data ${source.own}: --holdout ${holdout} of ${count} examples holds none out to evaluate on`)
      }
      const dataset = await loadDataset(task.dataset)
      checkFits(dataset.train, shape, 'its training set')
      checkFits(dataset.test, shape, 'its test set')
      const split = holdoutSplit(dataset.train.count, holdout)
      return holdout > 0
        ? { own: false, train: dataset.train, trainable: split.train, evalSet: dataset.train, evalExamples: split.holdout }
        : { own: false, train: dataset.train, trainable: split.train, evalSet: dataset.test, evalExamples: task.evalSamples }
    }
  }
}
