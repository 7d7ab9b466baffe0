// The command line as a user types it: the dml-node binary in a child process, with its help,
// version, subcommands, environment variables and shell completion.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DML_MONITOR_BIN, DML_NODE_BIN } from '@dml/node/launcher'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

/** Runs dml-node with `args` (and extra environment), from an empty directory; its exit code and output. */
async function dmlNode (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'dml-cli-'))
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [DML_NODE_BIN, ...args], { cwd, env: { ...process.env, ...env }, timeout: 30_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
}

describe('the dml-node command line', function () {
  this.timeout(60_000)

  it('--version and -v print the version', async () => {
    for (const flag of ['--version', '-v']) {
      const { code, stdout } = await dmlNode([flag])
      expect(code).to.equal(0)
      expect(stdout.trim()).to.equal(VERSION)
    }
  })

  it('npx dml-node and npx dml-monitor in the clone run the bins npm linked from the workspace, not the root package\'s', async () => {
    // a bin of the root package made npx load the whole dependency tree first, every launch
    expect((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin?: unknown }).bin).to.equal(undefined)
    for (const name of ['dml-node', 'dml-monitor']) {
      expect(realpathSync(join(ROOT, 'node_modules/.bin', name))).to.equal(join(ROOT, 'packages/node/bin', `${name}.js`))
    }
    const { stdout } = await promisify(execFile)('npx', ['dml-node', '--version'], { cwd: ROOT, timeout: 30_000 })
    expect(stdout.trim()).to.equal(VERSION)
  })

  it('-h lists the commands, every option with its variable, and examples', async () => {
    const { code, stdout } = await dmlNode(['-h'])
    expect(code).to.equal(0)
    expect(stdout).to.match(/^Usage: dml-node \[command\] \[options\]/)
    for (const command of ['start', 'keygen', 'export', 'evaluate', 'predict', 'completion']) expect(stdout).to.include(`dml-node ${command}`)
    expect(stdout).to.include('--local-epochs').and.include('[DML_LOCAL_EPOCHS]').and.include('Examples:').and.include('--version')
    const exportHelp = await dmlNode(['export', '--help'])
    expect(exportHelp.stdout).to.match(/^Usage: dml-node export \[options\]/)
    expect(exportHelp.stdout).to.include('--out')
  })

  it('an environment variable sets an option; a bad one is named', async () => {
    const { code, stderr } = await dmlNode([], { DML_HTTP_PORT: 'five thousand' })
    expect(code).to.equal(2)
    expect(stderr.trim()).to.equal('error: DML_HTTP_PORT (--http-port) must be a number (got "five thousand")')
  })

  it('a DML_ variable that no option reads is named, with the one it is closest to; the others are taken quietly', async () => {
    const { code, stdout, stderr } = await dmlNode(['--version'], { DML_BOOSTRAP: '/ip4/1.2.3.4/tcp/1', DML_ROUNDS: '3', DML_OUT: 'x', DML_FROM_SOURCES: '0' })
    expect(code).to.equal(0)
    expect(stdout.trim()).to.equal(VERSION)
    expect(stderr.trim()).to.equal('warning: DML_BOOSTRAP is no dml option\'s variable: it is ignored; did you mean DML_BOOTSTRAP?')
  })

  it('dml-monitor reads its variables, as its help says, and has --version', async () => {
    const monitor = async (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> => {
      try {
        const { stdout, stderr } = await promisify(execFile)(process.execPath, [DML_MONITOR_BIN, ...args], { env: { ...process.env, ...env }, timeout: 30_000 })
        return { code: 0, stdout, stderr }
      } catch (err) {
        const e = err as { code: number, stdout: string, stderr: string }
        return { code: e.code, stdout: e.stdout, stderr: e.stderr }
      }
    }
    expect((await monitor(['--version'])).stdout.trim()).to.equal(VERSION)
    expect((await monitor(['-v'])).stdout.trim()).to.equal(VERSION)
    const help = await monitor(['--help'])
    expect(help.stdout).to.include('[DML_JSON]').and.include('[DML_PORT]').and.include('--version')
    const badPort = await monitor([], { DML_PORT: 'abc' })
    expect(badPort.code).to.equal(2)
    expect(badPort.stderr.trim()).to.equal('error: DML_PORT (--port) must be a number (got "abc")')
    const badJson = await monitor([], { DML_JSON: 'maybe' })
    expect(badJson.code).to.equal(2)
    expect(badJson.stderr).to.include('DML_JSON (--json) is a switch')
  })

  it('keygen creates an identity once and prints its peer id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-keygen-'))
    try {
      const first = await dmlNode(['keygen', '--data-dir', dir])
      expect(first.code).to.equal(0)
      expect(first.stdout.trim()).to.match(/^12D3KooW\w+$/)
      const again = await dmlNode(['keygen'], { DML_DATA_DIR: dir })
      expect(again.stdout).to.equal(first.stdout)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a mistyped command or flag names the right one', async () => {
    const command = await dmlNode(['strat'])
    expect(command.code).to.equal(2)
    expect(command.stderr).to.include('unknown command "strat"; did you mean start?')
    const flag = await dmlNode(['--lcoal-epochs', '2'])
    expect(flag.stderr.trim()).to.equal('error: unknown flag --lcoal-epochs; did you mean --local-epochs?')
  })

  it('completion prints a shell script, and the completions it asks for are the commands and flags', async () => {
    const script = await dmlNode(['completion'])
    expect(script.code).to.equal(0)
    expect(script.stdout).to.include('--get-yargs-completions').and.include('dml-node')
    const commands = await dmlNode(['--get-yargs-completions', 'dml-node', ''])
    expect(commands.stdout.split('\n')).to.include.members(['start', 'keygen', 'export'])
    const flags = await dmlNode(['--get-yargs-completions', 'dml-node', 'export', '--'])
    expect(flags.stdout).to.include('--out').and.include('--data-dir')
  })
})
