import { expect } from 'chai'
import { AggregationError, DataError, IdxError, ModelError } from '@dml/trainer'
import { CheckpointError } from '@dml/node'
import { ConfigError, IdentityError, isExpected } from '@dml/node/cli'

describe('errors the user is to fix', () => {
  it('are told apart by their flag, not their message: each family of input mistakes is expected, a failure of dml is not', () => {
    for (const E of [ConfigError, DataError, IdxError, AggregationError, IdentityError, CheckpointError, ModelError]) {
      expect(isExpected(new E('wrong')), E.name).to.equal(true)
    }
    expect(isExpected(new Error('unknown model "x"')), 'a plain error saying what a mistake says').to.equal(false)
    expect(isExpected(new TypeError('x is undefined'))).to.equal(false)
    expect(isExpected({ expected: true, message: 'not an error' })).to.equal(false)
  })
})
