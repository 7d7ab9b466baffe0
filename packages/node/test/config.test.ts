import { expect } from 'chai'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '@dml/node/cli'
import { envName, NODE_OPTIONS, parseOptions, parseShard, helpText, readTls } from '@dml/node/cli'
import { selfSignedCert } from '../../../test/helpers.ts'

const ID = '12D3KooWN5i3tb5gETU8rZRMgMyvn34rGfgjzCgRSXzt89tLbNKM'

describe('options', () => {
  it('has the documented defaults', () => {
    const o = parseOptions([], NODE_OPTIONS)
    expect(o).to.include({ model: 'mlp', dataset: 'mnist', 'http-port': 5000, mdns: true, gpu: false, aggregation: 'fedavg', 'min-peers': 1 })
    expect(o.bootstrap).to.deep.equal([])
  })

  it('reads flags, repeated --bootstrap, --no-mdns and --flag=value', () => {
    const o = parseOptions(['--bootstrap', `/ip4/1.2.3.4/tcp/1/p2p/${ID}`, `--bootstrap=/ip4/5.6.7.8/tcp/2/p2p/${ID}`, '--no-mdns', '--rounds', '7', '--lr=0.01', '--gpu'], NODE_OPTIONS)
    expect(o.bootstrap).to.deep.equal([`/ip4/1.2.3.4/tcp/1/p2p/${ID}`, `/ip4/5.6.7.8/tcp/2/p2p/${ID}`])
    expect(o).to.include({ mdns: false, rounds: 7, lr: 0.01, gpu: true })
  })

  it('names the right flag for a typo', () => {
    expect(() => parseOptions(['--boostrap', 'x'], NODE_OPTIONS)).to.throw(ConfigError, 'did you mean --bootstrap?')
    expect(() => parseOptions(['--local-epoch', '2'], NODE_OPTIONS)).to.throw(ConfigError, 'did you mean --local-epochs?')
    expect(() => parseOptions(['--zzzzzzzzzz'], NODE_OPTIONS)).to.throw(ConfigError, 'see --help')
    // names of Object's own properties are unknown flags too, not a crash
    expect(() => parseOptions(['--constructor', 'x'], NODE_OPTIONS)).to.throw(ConfigError, 'unknown flag --constructor')
    expect(() => parseOptions(['--no-toString'], NODE_OPTIONS)).to.throw(ConfigError, 'unknown flag')
  })

  it('rejects bad values with the reason', () => {
    expect(() => parseOptions(['--rounds', 'many'], NODE_OPTIONS)).to.throw(ConfigError, '--rounds must be a number')
    expect(() => parseOptions(['--rounds', '2.5'], NODE_OPTIONS)).to.throw(ConfigError, 'whole number')
    expect(() => parseOptions(['--target-accuracy', '97'], NODE_OPTIONS)).to.throw(ConfigError, 'between 0 and 1')
    expect(() => parseOptions(['--http-port', '70000'], NODE_OPTIONS)).to.throw(ConfigError, 'port number')
    // a heartbeat must fit its message's bound on the interval
    expect(() => parseOptions(['--heartbeat-ms', '120000'], NODE_OPTIONS)).to.throw(ConfigError, '--heartbeat-ms must be from 1 to 60000')
    expect(() => parseOptions(['--model'], NODE_OPTIONS)).to.throw(ConfigError, 'needs a value')
    expect(() => parseOptions(['--gpu=yes'], NODE_OPTIONS)).to.throw(ConfigError, 'switch')
    expect(() => parseOptions(['model'], NODE_OPTIONS)).to.throw(ConfigError, 'unexpected argument')
    expect(() => parseShard('3/3')).to.throw(ConfigError)
    expect(parseShard('1/4')).to.deep.equal([1, 4])
  })

  it('refuses a --bootstrap that cannot be dialled, saying what it should look like', () => {
    expect(() => parseOptions(['--bootstrap', '127.0.0.1:4001'], NODE_OPTIONS)).to.throw(ConfigError, /--bootstrap is not a multiaddr .*expected a multiaddr such as \/ip4\/10.0.0.5\/tcp\/4001\/p2p\/.*\(got "127.0.0.1:4001"\)/)
    expect(() => parseOptions(['--bootstrap', '/ip4/127.0.0.1/tcp/4001'], NODE_OPTIONS)).to.throw(ConfigError, /names no peer id/)
    expect(() => parseOptions(['--bootstrap', '/ip4/127.0.0.1/udp/4001/p2p/' + ID], NODE_OPTIONS)).to.throw(ConfigError, /names no TCP port/)
    expect(() => parseOptions(['--bootstrap', '/ip4/127.0.0.1/tcp/4001/p2p/QmNotAPeer'], NODE_OPTIONS)).to.throw(ConfigError, /"QmNotAPeer", which is not a peer id/)
    expect(() => parseOptions(['--bootstrap', '/ip4/999.0.0.1/tcp/4001/p2p/' + ID], NODE_OPTIONS)).to.throw(ConfigError, /not a multiaddr/)
  })

  it('reads a config file (kebab or camel case keys); flags win over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-config-'))
    const path = join(dir, 'dml.json')
    writeFileSync(path, JSON.stringify({ model: 'cnn', localEpochs: 2, 'batch-size': 64, rounds: 5 }))
    const o = parseOptions(['--config', path, '--rounds', '9'], NODE_OPTIONS)
    expect(o).to.include({ model: 'cnn', 'local-epochs': 2, 'batch-size': 64, rounds: 9 })
  })

  it('rejects unknown keys and bad values in a config file, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-config-'))
    const path = join(dir, 'dml.json')
    writeFileSync(path, JSON.stringify({ modle: 'cnn' }))
    expect(() => parseOptions(['--config', path], NODE_OPTIONS)).to.throw(ConfigError, /dml.json.*did you mean --model/)
    writeFileSync(path, JSON.stringify({ rounds: 'x' }))
    expect(() => parseOptions(['--config', path], NODE_OPTIONS)).to.throw(ConfigError, '--rounds must be a number')
    writeFileSync(path, '{ not json')
    expect(() => parseOptions(['--config', path], NODE_OPTIONS)).to.throw(ConfigError, 'cannot read config file')
  })

  it('lists every option with its default and its variable in --help', async () => {
    const help = await helpText('dml-node', 'x', NODE_OPTIONS)
    for (const name of Object.keys(NODE_OPTIONS)) expect(help).to.include(`--${name}`).and.to.include(envName(name))
    expect(help).to.include('(default: 5000)')
    expect(parseOptions(['-h'], NODE_OPTIONS).help).to.equal(true)
    expect(parseOptions(['--help'], NODE_OPTIONS).help).to.equal(true)
  })

  it('takes every option from a DML_ variable too: flags win over it, it wins over the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-config-'))
    const path = join(dir, 'dml.json')
    writeFileSync(path, JSON.stringify({ rounds: 5, model: 'cnn' }))
    const env = { DML_ROUNDS: '7', DML_LOCAL_EPOCHS: '0.5', DML_MDNS: 'false', DML_BOOTSTRAP: `/ip4/1.2.3.4/tcp/1/p2p/${ID}, /ip4/5.6.7.8/tcp/2/p2p/${ID}`, DML_CONFIG: path, DML_UNRELATED: 'x' }
    const o = parseOptions(['--lr', '0.2'], NODE_OPTIONS, env)
    expect(o).to.include({ rounds: 7, 'local-epochs': 0.5, mdns: false, model: 'cnn', lr: 0.2 })
    expect(o.bootstrap).to.have.length(2)
    expect(parseOptions(['--rounds', '9'], NODE_OPTIONS, env).rounds).to.equal(9)
    expect(() => parseOptions([], NODE_OPTIONS, { DML_ROUNDS: 'many' })).to.throw(ConfigError, 'DML_ROUNDS (--rounds) must be a number (got "many")')
    expect(() => parseOptions([], NODE_OPTIONS, { DML_GPU: 'maybe' })).to.throw(ConfigError, 'DML_GPU (--gpu) is a switch')
  })

  it('--tls-cert and --tls-key: both or neither, readable PEM, and the key the certificate was made for', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-tls-'))
    const { cert, key } = selfSignedCert(dir, '127.0.0.1')
    const other = selfSignedCert(mkdtempSync(join(tmpdir(), 'dml-tls-')), '127.0.0.1')
    expect(readTls('', '')).to.equal(undefined)
    expect(readTls(cert, key)).to.deep.equal({ cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') })
    expect(() => readTls(cert, '')).to.throw(ConfigError, '--tls-cert needs --tls-key')
    expect(() => readTls('', key)).to.throw(ConfigError, '--tls-key needs --tls-cert')
    expect(() => readTls(join(dir, 'none.pem'), key)).to.throw(ConfigError, 'cannot read --tls-cert')
    expect(() => readTls(key, key)).to.throw(ConfigError, 'is not a PEM certificate')
    expect(() => readTls(cert, cert)).to.throw(ConfigError, 'is not a PEM private key')
    expect(() => readTls(cert, other.key)).to.throw(ConfigError, 'is not the key of --tls-cert')
  })

  it('the options table of docs/usage.md has every option (the table in the code is the one source)', () => {
    const usage = readFileSync(new URL('../../../docs/usage.md', import.meta.url), 'utf8')
    const section = usage.slice(usage.indexOf('\n## Options'), usage.indexOf('\n## ', usage.indexOf('\n## Options') + 1))
    const rows = section.split('\n').filter(l => l.startsWith('| `--'))
    const documented = new Set(rows.flatMap(row => [...row.split(' | ')[0].matchAll(/--(?:no-)?([a-z-]+)/g)].map(m => m[1])))
    expect([...Object.keys(NODE_OPTIONS)].filter(name => !documented.has(name)), 'options missing from docs/usage.md').to.deep.equal([])
    expect([...documented].filter(name => !Object.hasOwn(NODE_OPTIONS, name)), 'docs/usage.md rows of no option').to.deep.equal([])
  })
})
