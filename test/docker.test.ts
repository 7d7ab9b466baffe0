// The Docker files, linted: no Docker engine runs on the machines this is tested on, and the
// images' base layers cannot be fetched without the internet, so the images are not built here.
// The rules are hadolint's that matter for these files, and dml's own: pinned bases, an
// unprivileged user, exec-form commands, apt without recommends or leftovers, copied paths that
// exist, the libp2p and HTTP ports, /data as the data directory, and options that dml-node takes.
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { envName, NODE_OPTIONS, parseOptions, peerOptions } from '@dml/node/cli'
import { trainingDifference } from '@dml/protocol'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

interface Instruction { line: number, keyword: string, args: string }

/** A Dockerfile's instructions, continuation lines joined, comments left out. */
function instructions (path: string): Instruction[] {
  const out: Instruction[] = []
  let pending: Instruction | undefined
  readFileSync(path, 'utf8').split('\n').forEach((raw, i) => {
    const text = raw.trim()
    if (pending === undefined && (text === '' || text.startsWith('#'))) return
    const body = text.replace(/\\$/, '').trim()
    if (pending === undefined) {
      const [keyword, ...rest] = body.split(/\s+/)
      pending = { line: i + 1, keyword: keyword.toUpperCase(), args: rest.join(' ') }
    } else if (!text.startsWith('#')) {
      pending.args += ' ' + body
    }
    if (!text.endsWith('\\')) { out.push(pending); pending = undefined }
  })
  return out
}

/** Problems with one Dockerfile, each naming its line. */
function lint (file: string): string[] {
  const problems: string[] = []
  const say = (i: Instruction, what: string): void => { problems.push(`${file}:${i.line} ${i.keyword}: ${what}`) }
  const all = instructions(join(ROOT, file))
  const args = new Map<string, string>()
  const stages: Instruction[][] = []
  for (const i of all) {
    if (i.keyword === 'ARG') {
      const [name, value] = i.args.split('=')
      if (value !== undefined) args.set(name, value)
    }
    if (i.keyword === 'FROM') stages.push([])
    stages.at(-1)?.push(i)
  }
  const execForm = (i: Instruction, text: string): string[] | undefined => {
    try {
      const parsed = JSON.parse(text) as unknown
      if (Array.isArray(parsed) && parsed.every(p => typeof p === 'string')) return parsed as string[]
    } catch {}
    say(i, 'use the exec form (a JSON array): the shell form does not pass signals to the peer')
    return undefined
  }
  for (const i of all) {
    switch (i.keyword) {
      case 'FROM': {
        const image = i.args.split(/\s+/)[0].replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? '')
        const tag = image.split(':')[1]
        if (tag === undefined || tag === 'latest') say(i, `pin the base image's version (${image})`)
        break
      }
      case 'RUN':
        if (/apt-get install/.test(i.args)) {
          if (!/-y\b/.test(i.args) || !/--no-install-recommends/.test(i.args)) say(i, 'apt-get install -y --no-install-recommends')
          if (!/rm -rf \/var\/lib\/apt\/lists/.test(i.args)) say(i, 'remove /var/lib/apt/lists in the same RUN')
        }
        if (/\b(curl|wget)\b[^|]*\|\s*(ba)?sh\b/.test(i.args)) say(i, 'do not pipe a download into a shell')
        if (/\bsudo\b/.test(i.args)) say(i, 'no sudo')
        break
      case 'COPY':
        if (!i.args.startsWith('--from')) {
          for (const source of i.args.split(/\s+/).slice(0, -1)) if (!existsSync(join(ROOT, source))) say(i, `${source} is not in the build context`)
        }
        break
      case 'ADD':
        say(i, 'use COPY (ADD fetches URLs and unpacks archives)')
        break
      case 'WORKDIR':
        if (!i.args.startsWith('/')) say(i, 'an absolute path')
        break
      case 'HEALTHCHECK':
        execForm(i, i.args.slice(i.args.indexOf('CMD') + 3).trim())
        break
      case 'ENTRYPOINT':
      case 'CMD': {
        const argv = execForm(i, i.args)
        if (argv !== undefined && i.keyword === 'ENTRYPOINT') {
          if (!existsSync(join(ROOT, argv[1]))) say(i, `${argv[1]} does not exist`)
          try {
            const o = parseOptions(argv.slice(2), NODE_OPTIONS)
            if (o['data-dir'] !== '/data') say(i, 'the data directory is /data, the volume')
          } catch (err) {
            say(i, `dml-node refuses its options: ${(err as Error).message}`)
          }
        }
        break
      }
    }
  }
  const final = stages.at(-1)!
  const user = final.filter(i => i.keyword === 'USER').at(-1)
  if (user === undefined || ['root', '0'].includes(user.args.split(':')[0])) problems.push(`${file}: the final stage must run as an unprivileged USER`)
  const exposed = final.filter(i => i.keyword === 'EXPOSE').flatMap(i => i.args.split(/\s+/))
  for (const port of ['4001', '5000']) if (!exposed.includes(port)) problems.push(`${file}: EXPOSE ${port}`)
  if (!final.some(i => i.keyword === 'VOLUME' && i.args === '/data')) problems.push(`${file}: VOLUME /data`)
  return problems
}

describe('the Docker files', () => {
  for (const file of ['docker/Dockerfile', 'docker/Dockerfile.gpu']) {
    it(`${file} passes the lint`, () => {
      expect(lint(file)).to.deep.equal([])
    })
  }

  it('the lint finds what it looks for', () => {
    // a file made to break each rule (checked through the same parser)
    const bad = instructions(join(ROOT, 'test', 'fixtures', 'bad.Dockerfile'))
    expect(bad.map(i => i.keyword)).to.include.members(['FROM', 'RUN', 'ADD', 'ENTRYPOINT'])
    const problems = lint('test/fixtures/bad.Dockerfile').join('\n')
    for (const expected of ['pin the base image', '--no-install-recommends', '/var/lib/apt/lists', 'pipe a download', 'use COPY', 'exec form', 'unprivileged USER', 'EXPOSE 4001', 'VOLUME /data', 'not in the build context']) {
      expect(problems).to.include(expected)
    }
  })

  it('the compose file: every peer publishes the libp2p port and the dashboard, mounts /data, and sets only dml-node\'s variables', () => {
    const compose = parse(readFileSync(join(ROOT, 'docker', 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, any> }
    const variables = new Set(Object.keys(NODE_OPTIONS).map(envName))
    expect(Object.keys(compose.services)).to.include.members(['peer1', 'peer2', 'peer3', 'gpu'])
    for (const [name, service] of Object.entries(compose.services)) {
      expect(existsSync(join(ROOT, 'docker', service.build.context, service.build.dockerfile)), `${name}'s Dockerfile`).to.equal(true)
      const ports = service.ports as string[]
      expect(ports.some(p => p.endsWith(':4001')), `${name} publishes 4001`).to.equal(true)
      expect(ports.some(p => p.endsWith(':5000')), `${name} publishes 5000`).to.equal(true)
      expect((service.volumes as string[]).some(v => v.endsWith(':/data')), `${name} mounts /data`).to.equal(true)
      for (const variable of Object.keys(service.environment ?? {})) expect(variables.has(variable), `${name}: ${variable} is no option of dml-node`).to.equal(true)
    }
    // the host ports differ: the peers can run side by side
    const hostPorts = Object.values(compose.services).flatMap(s => (s.ports as string[]).map(p => p.split(':')[0]))
    expect(new Set(hostPorts).size).to.equal(hostPorts.length)
  })

  it('the docker run lines of docs/usage.md, as the image\'s entrypoint takes them: options dml-node accepts, and one task for the network', () => {
    const usage = readFileSync(join(ROOT, 'docs', 'usage.md'), 'utf8').replace(/\\\n\s*/g, ' ')
    const entrypoint = JSON.parse(instructions(join(ROOT, 'docker', 'Dockerfile')).find(i => i.keyword === 'ENTRYPOINT')!.args) as string[]
    const lines = [...usage.matchAll(/^docker run (.*?)(?:\s+#.*)?$/gm)].map(m => m[1].replace('<first host>', '10.0.0.5').replace('<its peer id>', '12D3KooWDWG31EDrNyzFQKcBHtq2P5n2x9Vz6Y8JpRPQVhGmdHcK'))
    expect(lines.length).to.be.at.least(2)
    const tasks = lines.map(line => {
      const words = line.split(/\s+/)
      const env: Record<string, string> = {}
      let i = 0
      for (; i < words.length && words[i] !== 'dml'; i++) {
        if (words[i] === '-e') { const [name, value] = words[++i].split('='); env[name] = value }
        else if (['-p', '-v', '--name'].includes(words[i])) i++
      }
      const argv = [...entrypoint.slice(2), ...words.slice(i + 1)]
      return peerOptions(parseOptions(argv, NODE_OPTIONS, env)).task
    })
    for (const task of tasks.slice(1)) expect(trainingDifference(tasks[0], task), 'a peer that trains otherwise than the first').to.equal(undefined)
  })

  it('the health check asks the status API at the port -e DML_HTTP_PORT names, else 5000, and fails when it does not answer', async () => {
    const health = JSON.parse(instructions(join(ROOT, 'docker', 'Dockerfile')).find(i => i.keyword === 'HEALTHCHECK')!.args.replace(/^.*?CMD\s+/, '')) as string[]
    const server = createServer((req, res) => { res.writeHead(req.url === '/api/status' ? 200 : 404).end('{}') })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const port = String((server.address() as { port: number }).port)
      const check = async (env: Record<string, string>): Promise<number> => await new Promise(resolve => {
        execFile(process.execPath, health.slice(1), { env: { ...process.env, ...env }, timeout: 10_000 }, (err) => { resolve(err === null ? 0 : (err as { code?: number }).code ?? 1) })
      })
      expect(await check({ DML_HTTP_PORT: port })).to.equal(0)
      server.close()
      expect(await check({ DML_HTTP_PORT: port })).to.equal(1)
    } finally {
      server.close()
    }
  })
})
