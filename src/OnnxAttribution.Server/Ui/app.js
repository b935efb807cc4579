// The auditor's page: calls the server's JSON and PNG endpoints with the API key typed in (X-Api-Key), shows the
// query and its top rows, and downloads the HTML report. No library: it runs offline, from the server alone.
'use strict';
const $ = id => document.getElementById(id);
let current = null; // the last query: {kind: 'seed', seed} or {kind: 'file', file}

// Scores as the report writes them (AuditReportHtml.FormatScore): 4 significant digits.
const formatScore = s => s.toPrecision(4);

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = $('key').value.trim();
  if (key) h['X-Api-Key'] = key;
  return h;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  $('status').textContent = '';
}

// Fetches a URL; a non-2xx answer throws with the server's own message ({"error": ...}).
async function call(url, options) {
  const response = await fetch(url, Object.assign({}, options, { headers: headers(options && options.headers) }));
  if (!response.ok) {
    let message = response.status + ' ' + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON: keep the status */ }
    throw new Error(message);
  }
  return response;
}

async function imageUrl(url) {
  return URL.createObjectURL(await (await call(url)).blob());
}

async function loadStores() {
  $('error').hidden = true;
  try {
    const stores = (await (await call('/stores')).json()).stores;
    const select = $('store');
    select.replaceChildren(...stores.map(s => {
      const o = document.createElement('option');
      o.value = s.name;
      o.textContent = `${s.name} (${s.method}, ${s.rows} rows)`;
      return o;
    }));
    $('status').textContent = stores.length + ' store(s)';
  } catch (e) { showError(e.message); }
}

const store = () => encodeURIComponent($('store').value);
const topCount = () => Math.max(1, parseInt($('top').value, 10) || 10);

async function attribute(query) {
  $('error').hidden = true;
  if (!$('store').value) {
    // Before the store list has loaded (or when the key was refused) there is nothing to ask.
    showError('no store chosen yet: enter the API key and load the stores first');
    return;
  }
  $('status').textContent = 'attributing…';
  current = query;
  try {
    const url = `/stores/${store()}/attribute?top=${topCount()}`;
    const answer = query.kind === 'seed'
      ? await call(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ seeds: [query.seed] }) })
      : await call(url, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: query.file });
    const ranking = (await answer.json()).rankings[0];
    $('query-image').src = query.kind === 'seed'
      ? await imageUrl(`/stores/${store()}/query.png?seed=${query.seed}`)
      : URL.createObjectURL(query.file);
    $('query-label').textContent = query.kind === 'seed' ? `seed ${query.seed} (ddim, 50 steps)` : query.file.name;
    await showResults(ranking.top);
    $('answer').hidden = false;
    $('status').textContent = `${ranking.top.length} training images`;
  } catch (e) { showError(e.message); }
}

async function showResults(rows) {
  $('details').hidden = true;
  const cells = await Promise.all(rows.map(async row => {
    const cell = document.createElement('button');
    cell.type = 'button';
    cell.className = 'cell';
    cell.dataset.row = row.index;
    const img = document.createElement('img');
    img.className = 'px';
    img.alt = 'training row ' + row.index;
    img.src = await imageUrl(`/stores/${store()}/rows/${row.index}.png`);
    const caption = document.createElement('div');
    caption.innerHTML = `#<span class="row"></span> <span class="score"></span>`;
    caption.querySelector('.row').textContent = row.index;
    caption.querySelector('.score').textContent = formatScore(row.score);
    cell.append(img, caption);
    cell.addEventListener('click', () => details(cell, row));
    return cell;
  }));
  $('results').replaceChildren(...cells);
}

async function details(cell, row) {
  document.querySelectorAll('.cell.chosen').forEach(c => c.classList.remove('chosen'));
  cell.classList.add('chosen');
  $('d-row').textContent = row.index;
  $('d-rank').textContent = row.rank;
  $('d-score').textContent = formatScore(row.score);
  $('d-label').textContent = '…';
  $('details').hidden = false;
  try {
    const info = await (await call(`/stores/${store()}/rows/${row.index}`)).json();
    $('d-label').textContent = info.label === undefined ? '—' : info.label;
  } catch (e) { showError(e.message); }
}

async function downloadReport() {
  if (!current) return;
  $('error').hidden = true;
  $('status').textContent = 'making the report…';
  try {
    const answer = current.kind === 'seed'
      ? await call(`/stores/${store()}/report?seed=${current.seed}&top=${topCount()}`)
      : await call(`/stores/${store()}/report?top=${topCount()}&name=${encodeURIComponent(current.file.name)}`,
          { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: current.file });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(await answer.blob());
    link.download = `report-${$('store').value}.html`;
    document.body.append(link);
    link.click();
    link.remove();
    $('status').textContent = 'report downloaded';
  } catch (e) { showError(e.message); }
}

$('reload').addEventListener('click', loadStores);
$('key').addEventListener('change', loadStores);
$('file').addEventListener('change', e => { if (e.target.files[0]) attribute({ kind: 'file', file: e.target.files[0] }); });
$('seed-form').addEventListener('submit', e => { e.preventDefault(); attribute({ kind: 'seed', seed: parseInt($('seed').value, 10) }); });
$('download').addEventListener('click', downloadReport);
const drop = $('drop');
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) attribute({ kind: 'file', file: e.dataTransfer.files[0] });
});
loadStores();
