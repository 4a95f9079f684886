// Wires the panels together around one state object that the page URL mirrors (shareable links).

import { createABPreview } from './ab.js';
import { getJSON } from './api.js';
import { clear, debounce, h } from './dom.js';
import { createNeuronBrowser, createNeuronDetail } from './neurons.js';
import { K_CHOICES, queryFromState, stateFromQuery } from './state.js';
import { createSteering } from './steer.js';
import { createTree } from './tree.js';
import { showError } from './ui.js';

const { state, problems } = stateFromQuery(window.location.search);
const pageError = document.getElementById('page-error');

const ctx = {
  state,
  selectedId: null,
  commit() {
    const url = `${window.location.pathname}${queryFromState(state)}`;
    if (url !== `${window.location.pathname}${window.location.search}`) window.history.replaceState(null, '', url);
  },
  async selectNeuron(target, { focus = true } = {}) {
    state.neuron = target;
    ctx.commit();
    const detail = await neuronDetail.show(target, { focus: focus && target !== null });
    ctx.selectedId = detail ? String(detail.id) : null;
    browser.markSelected();
    tree.markSelected();
  },
  addIntervention(kind, target) {
    return steering.add(kind, target);
  },
};

const browser = createNeuronBrowser(ctx);
const neuronDetail = createNeuronDetail(ctx);
const tree = createTree(ctx);
const steering = createSteering(ctx);
const ab = createABPreview(ctx);

// -- tabs (ARIA tabs pattern: arrow keys, Home and End move between tabs) ------------------------
const tabs = [...document.querySelectorAll('[role="tab"]')];

function selectTab(tab, { focus = false } = {}) {
  for (const t of tabs) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
    document.getElementById(t.getAttribute('aria-controls')).hidden = !selected;
  }
  if (focus) tab.focus();
  state.view = tab.dataset.view;
  ctx.commit();
  if (state.view === 'tree') tree.load();
}

for (const tab of tabs) {
  tab.addEventListener('click', () => selectTab(tab));
  tab.addEventListener('keydown', (event) => {
    const i = tabs.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectTab(tabs[(next + tabs.length) % tabs.length], { focus: true });
  });
}

// -- the user form --------------------------------------------------------------------------------
const userInput = document.getElementById('user');
const userOptions = document.getElementById('user-options');
const kSelect = document.getElementById('k');
const seenBox = document.getElementById('exclude-seen');

clear(kSelect, [...new Set([...K_CHOICES, state.k])].sort((a, b) => a - b)
  .map((k) => h('option', { value: String(k), selected: k === state.k }, String(k))));
userInput.value = state.user;
seenBox.checked = state.excludeSeen;

function userChanged() {
  steering.loadProfile();
  steering.refreshNow();
  ab.refreshNow();
}

function setUser(user) {
  const value = user.trim();
  userInput.value = value;
  if (value === state.user) return;
  state.user = value;
  ctx.commit();
  userChanged();
}

document.getElementById('user-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setUser(userInput.value);
});
userInput.addEventListener('change', () => setUser(userInput.value));
const suggestUsers = debounce(async () => {
  try {
    const page = await getJSON('users', { q: userInput.value.trim(), limit: 20 });
    clear(userOptions, page.users.map((u) => h('option', { value: u })));
  } catch {
    // suggestions are a convenience; the request for the user itself reports errors
  }
}, 200);
userInput.addEventListener('input', suggestUsers);

document.getElementById('random-user').addEventListener('click', async () => {
  try {
    const { total } = await getJSON('users', { limit: 1 });
    const page = await getJSON('users', { limit: 1, offset: Math.floor(Math.random() * total) });
    if (page.users.length) setUser(page.users[0]);
  } catch (err) {
    showError(pageError, err, 'random user');
  }
});

kSelect.addEventListener('change', () => {
  state.k = Number(kSelect.value);
  ctx.commit();
  steering.refreshNow();
  ab.refresh();
});
seenBox.addEventListener('change', () => {
  state.excludeSeen = seenBox.checked;
  ctx.commit();
  steering.refreshNow();
  ab.refresh();
});

// -- adding interventions -------------------------------------------------------------------------
const addInput = document.getElementById('add-neuron');
const addOptions = document.getElementById('add-options');
document.getElementById('add-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const target = addInput.value.trim();
  const kind = event.submitter?.value || 'steer';
  if (!target) {
    addInput.focus();
    return;
  }
  if (await steering.add(kind, target)) addInput.value = '';
});
const suggestNeurons = debounce(async () => {
  const q = addInput.value.trim();
  if (!q) return;
  try {
    const page = await getJSON('neurons', { q, limit: 20 });
    clear(addOptions, page.neurons.map((n) => h('option', { value: n.slug || String(n.id) }, n.label)));
  } catch {
    // as above: adding reports its own errors
  }
}, 200);
addInput.addEventListener('input', suggestNeurons);
document.getElementById('clear-interventions').addEventListener('click', () => steering.clearAll());

// -- start ----------------------------------------------------------------------------------------
async function header() {
  const info = document.getElementById('bundle-info');
  try {
    const health = await getJSON('healthz');
    const e = health.engine;
    info.textContent = `${e.dataset} · ${e.users} users · ${e.items} items · ${e.latents} neurons`
      + (e.neuron_labels ? '' : ' · no labels yet (run steerrec interpret)');
  } catch (err) {
    info.textContent = 'service unreachable';
    showError(pageError, err, 'health check');
  }
}

if (problems.length) {
  pageError.hidden = false;
  clear(pageError, h('p', { class: 'error-head' }, 'Parts of the link were ignored'),
    problems.map((p) => h('p', { class: 'error-line' }, p)));
}
header();
steering.renderInterventions();
browser.search(false);
selectTab(tabs.find((t) => t.dataset.view === state.view) || tabs[0]);
if (state.neuron) ctx.selectNeuron(state.neuron, { focus: false });
userChanged();
