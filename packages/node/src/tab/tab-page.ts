// The "train in this tab" page's script (train.html): a button that starts the tab's peer, and
// what it does, shown as it happens. `?join` in the address starts it at once (a lab's machines
// opening one link); `?backend=wasm` (or webgpu, webgl, cpu) picks the backend. Files picked in the page
// are the tab's own data: read in the tab, never sent.
import { count } from '../log.ts'
import { startTab, type RunningTab } from './tab.ts'

const $ = (id: string): HTMLElement => document.getElementById(id)!
const params = new URLSearchParams(location.search)
let running: RunningTab | undefined

function say (level: 'info' | 'warn', event: string, msg: string): void {
  const line = document.createElement('li')
  line.className = level
  line.dataset.event = event
  line.textContent = `${new Date().toLocaleTimeString()}  ${msg}`
  const list = $('log')
  list.prepend(line)
  while (list.childElementCount > 200) list.lastElementChild!.remove()
}

function show (): void {
  if (running === undefined) return
  const s = running.status()
  const last = s.history.at(-1) as { accuracy: number } | undefined
  const me = s.nodes.find(n => n.peerId === running!.peerId)
  $('state').textContent = `peer ${running.peerId.slice(-6)} (${running.backend}) · round ${s.round}` +
    (last !== undefined ? ` · accuracy ${(100 * last.accuracy).toFixed(2)}%` : '') +
    ` · ${count(s.activeNodes, 'peer')}` + (me !== undefined && me.samplesPerSec > 0 ? ` · ${me.samplesPerSec} samples/s here` : '') +
    (s.leader === null ? ' · no leader yet' : '')
}

async function join (): Promise<void> {
  const button = $('join') as HTMLButtonElement
  button.disabled = true
  $('state').textContent = 'starting…'
  try {
    const files = Array.from((($('files') as HTMLInputElement).files ?? []) as ArrayLike<File>)
    running = await startTab({ said: say }, { backend: params.get('backend') ?? undefined, files })
    ;(window as unknown as { dmlTab: RunningTab }).dmlTab = running
    setInterval(show, 500)
    show()
  } catch (err) {
    $('state').textContent = `could not join: ${(err as Error).message}`
    say('warn', 'tab-failed', (err as Error).message)
    button.disabled = false
  }
}

$('join').addEventListener('click', () => { void join() })
// a closed tab is a peer leaving: it says nothing more, and the rounds go on without it
addEventListener('pagehide', () => { void running?.stop() })
if (params.has('join')) void join()
