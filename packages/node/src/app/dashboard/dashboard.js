// The dashboard: this peer's status, pushed by the server as server-sent events (/api/events).
// Plain browser JavaScript, no build step; uPlot draws the chart. It works offline: every file
// comes from the peer.
/* global uPlot, EventSource, document */
'use strict'

const $ = (id) => document.getElementById(id)
const short = (peer) => peer ? '…' + peer.slice(-6) : '—'
const percent = (x) => x === null || x === undefined ? '—' : (100 * x).toFixed(2) + '%'

function duration (seconds) {
  if (seconds === null || seconds === undefined) return '?'
  if (seconds < 90) return Math.round(seconds) + ' s'
  if (seconds < 5400) return Math.round(seconds / 60) + ' min'
  return (seconds / 3600).toFixed(1) + ' h'
}

let chart = null
/** when the peer last sent its status, and the round's progress it said then */
let lastSeen = null
let lastProgress = ''

function chartData (history) {
  return [history.map(h => h.round), history.map(h => 100 * h.accuracy), history.map(h => h.loss)]
}

function drawChart (history) {
  const data = chartData(history)
  const box = $('chart')
  box.dataset.rounds = String(history.length)
  if (chart !== null) {
    chart.setData(data)
    showNewest(chart)
    return
  }
  chart = new uPlot({
    width: box.clientWidth || 800,
    height: 260,
    scales: {
      x: { time: false },
      // from a little below the worst accuracy shown: the last points' gains stay visible
      acc: { range: (u, min, max) => [Math.max(0, Math.floor(min) - 2), Math.min(100, Math.ceil(max) + 1)] }
    },
    axes: [
      { label: 'round', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
      { scale: 'acc', label: 'accuracy (%)' },
      { scale: 'loss', side: 1, label: 'loss', grid: { show: false } }
    ],
    series: [
      { label: 'round' },
      { label: 'accuracy (%)', scale: 'acc', stroke: '#2a7ae2', width: 2, points: { show: true } },
      { label: 'loss', scale: 'loss', stroke: '#e2572a', width: 2, points: { show: true } }
    ],
    // off the chart, the legend shows the newest round's figures, not "--"
    hooks: { setCursor: [u => { if (u.cursor.idx == null) showNewest(u) }] }
  }, data, box)
  showNewest(chart)
}

function showNewest (u) {
  const rounds = u.data[0].length
  if (rounds > 0 && u.cursor.idx == null) u.setLegend({ idx: rounds - 1 })
}

function cell (row, text) {
  const td = document.createElement('td')
  td.textContent = text
  row.appendChild(td)
}

function workState (work, round) {
  if (work === null || work === undefined) return 'idle'
  const pct = work.total === 0 ? 0 : Math.round(100 * work.done / work.total)
  return `round ${work.round}: ${pct}% trained`
}

function drawPeers (s) {
  // the live peers, this one among them (it hears its own heartbeats)
  const rows = s.nodes.map(n => ({ ...n, self: n.peerId === s.peerId }))
  const current = s.round + 1
  const assigned = rows.reduce((sum, r) => sum + (r.work && r.work.round === current ? r.work.total : 0), 0)
  const body = $('peers').tBodies[0]
  body.replaceChildren()
  for (const r of rows) {
    const tr = document.createElement('tr')
    tr.dataset.peer = r.peerId
    if (r.isLeader) tr.classList.add('leader')
    if (r.self) tr.classList.add('self')
    cell(tr, short(r.peerId))
    cell(tr, r.device)
    cell(tr, r.backend)
    cell(tr, r.samplesPerSec > 0 ? String(r.samplesPerSec) : '—')
    cell(tr, assigned > 0 && r.work && r.work.round === current ? Math.round(100 * r.work.total / assigned) + '%' : '—')
    cell(tr, r.self ? 'this peer' : (r.lastSeenMs / 1000).toFixed(1) + ' s ago')
    // how this peer reaches it: straight, through a relay, or straight after a hole punch
    cell(tr, r.self ? (s.relay && s.relay.via.length > 0 ? 'via relay ' + s.relay.via.map(short).join(', ') : '—') : ((s.reach || {})[r.peerId] || '—'))
    cell(tr, workState(r.work, current))
    body.appendChild(tr)
  }
}

function drawEvents (events) {
  const list = $('events')
  list.replaceChildren()
  for (const e of [...(events || [])].reverse().slice(0, 30)) {
    const li = document.createElement('li')
    li.className = e.level
    li.dataset.event = e.event
    li.textContent = `${new Date(e.ts).toLocaleTimeString()}  ${e.msg}`
    list.appendChild(li)
  }
}

function render (s) {
  $('peer').textContent = short(s.peerId)
  $('leader').textContent = s.leader === null ? 'none (electing)' : short(s.leader) + (s.isLeader ? ' (this peer)' : '')
  $('leader').dataset.peer = s.leader || ''
  $('term').textContent = String(s.term)
  $('state').textContent = s.state
  $('round').textContent = `${s.round} of ${s.totalRounds}`
  $('accuracy').textContent = percent(s.accuracy)
  $('nodes').textContent = `${s.activeNodes} (${s.gpuNodes} GPU, ${s.cpuNodes} CPU)`
  $('progress-bar').style.width = (100 * s.progress).toFixed(1) + '%'
  const p = s.roundProgress
  lastProgress = $('progress-text').textContent = p === null
    ? (s.state === 'finished' ? `training finished after ${s.round} rounds` : `${Math.round(100 * s.progress)}% of training; round ${s.round + 1} not started`)
    : `round ${p.round}: ${Math.round(100 * p.fraction)}% trained (${p.done} of ${p.total} examples), ETA ${duration(p.etaSeconds)}; all rounds: ${duration(p.trainingEtaSeconds)}`
  drawChart(s.history)
  drawPeers(s)
  drawEvents(s.events)
}

const source = new EventSource('/api/events')
source.addEventListener('status', (e) => {
  lastSeen = new Date()
  $('connection').textContent = 'live'
  $('connection').classList.add('live')
  render(JSON.parse(e.data))
})
source.addEventListener('error', () => {
  // EventSource reconnects by itself (every 2 s, as the server asks): the peer restarting, or the network
  $('connection').textContent = 'reconnecting…'
  $('connection').classList.remove('live')
  // what the page shows is this peer's last word: it does not say "training" as if it still were
  if (lastSeen !== null) {
    const at = lastSeen.toLocaleTimeString()
    $('state').textContent = `not answering since ${at}`
    $('progress-text').textContent = `as of ${at}, when this peer last answered: ${lastProgress}`
  }
})
