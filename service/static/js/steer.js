// The steering panel: the user, the interventions (sliders for steer and promote, a threshold for
// filter), and the unsteered and steered top-k side by side with the differences highlighted.
// Slider moves update the URL at once and ask the API after a short pause (debounced); an answer
// that arrives after a newer request was sent is dropped.

import { ApiError, getJSON, isAbort, neuronDetail } from './api.js';
import { diffRankings, summarize } from './diff.js';
import { clear, debounce, h, uid } from './dom.js';
import { formatSpec, num, OPS, PROMOTE_RANGE, recommendParams } from './state.js';
import { renderRanking, showError } from './ui.js';

const DEBOUNCE_MS = 150;
const KIND_NAMES = { steer: 'Steer', filter: 'Filter', promote: 'Promote' };

/** /recommend parameters as one canonical query string (what the results were computed for). */
export function paramsKey(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) search.append(key, v);
  }
  return search.toString();
}

export function createSteering(ctx) {
  const rowsEl = document.getElementById('interventions');
  const emptyEl = document.getElementById('interventions-empty');
  const results = document.getElementById('results');
  const unsteeredEl = document.getElementById('unsteered');
  const steeredEl = document.getElementById('steered');
  const summaryEl = document.getElementById('diff-summary');
  const errorEl = document.getElementById('steer-error');
  const profileEl = document.getElementById('profile');
  const baseCache = new Map();
  const echoes = new WeakMap(); // intervention -> text element of its row showing the API's echo
  let controller = null;
  let sequence = 0;

  // -- interventions --------------------------------------------------------------------------------
  function sliderFor(iv, name) {
    const range = iv.kind === 'steer' ? OPS[iv.op] : PROMOTE_RANGE;
    const id = uid('value');
    const output = h('output', { for: id, class: 'value' }, signed(iv.value));
    const input = h('input', {
      type: 'range', id, min: String(range.min), max: String(range.max), step: String(range.step),
      value: String(iv.value), 'aria-valuetext': valueText(iv),
    });
    input.addEventListener('input', () => {
      iv.value = Number(input.value);
      output.textContent = signed(iv.value);
      input.setAttribute('aria-valuetext', valueText(iv));
      ctx.commit();
      refresh();
    });
    const what = iv.kind === 'steer' ? `${OPS[iv.op].name} strength` : 'promotion';
    return [h('label', { for: id }, `${what[0].toUpperCase()}${what.slice(1)} for `, name), input, output];
  }

  function thresholdFor(iv, name) {
    const id = uid('threshold');
    const input = h('input', { type: 'number', id, min: '0', max: '1000', step: '0.5', value: String(iv.threshold),
                               inputmode: 'decimal' });
    input.addEventListener('input', () => {
      const value = Number(input.value);
      if (input.value === '' || !Number.isFinite(value)) return;
      iv.threshold = value;
      ctx.commit();
      refresh();
    });
    return [h('label', { for: id }, 'Drop items of ', name, ' with activation above (scale units)'), input];
  }

  function opSelect(iv, rebuild) {
    const id = uid('op');
    const select = h('select', { id }, Object.entries(OPS).map(([op, o]) =>
      h('option', { value: op, selected: op === iv.op }, `${o.name} (${op})`)));
    select.addEventListener('change', () => {
      iv.op = select.value;
      iv.value = OPS[iv.op].initial;
      ctx.commit();
      rebuild();
      refresh();
    });
    return [h('label', { for: id }, 'Operation'), select];
  }

  function row(iv, index) {
    const name = h('span', { class: 'iv-name' }, iv.target);
    neuronDetail(iv.target).then((d) => { name.textContent = d.label; }, () => {
      name.textContent = `${iv.target} (unknown neuron)`;
    });
    const echo = h('span', { class: 'iv-echo', 'aria-live': 'polite' });
    echoes.set(iv, echo);
    let controls;
    if (iv.kind === 'steer') controls = [opSelect(iv, renderInterventions), sliderFor(iv, name.cloneNode(true))];
    else if (iv.kind === 'promote') controls = sliderFor(iv, name.cloneNode(true));
    else controls = thresholdFor(iv, name.cloneNode(true));
    const li = h('li', { class: `iv iv-${iv.kind}`, dataset: { kind: iv.kind, target: iv.target, index: String(index) } },
      h('div', { class: 'iv-head' },
        h('span', { class: `iv-kind kind-${iv.kind}` }, KIND_NAMES[iv.kind]),
        name, h('code', null, iv.item ? `${iv.item}@${iv.target}` : iv.target),
        h('button', {
          type: 'button', class: 'remove', 'aria-label': `Remove ${iv.kind} on ${iv.target}`,
          onclick: () => remove(iv),
        }, '×')),
      h('div', { class: 'iv-controls' }, controls),
      echo);
    // Labels built before the name resolved: keep them in step with it.
    neuronDetail(iv.target).then((d) => {
      for (const el of li.querySelectorAll('label .iv-name')) el.textContent = d.label;
    }, () => {});
    return li;
  }

  function renderInterventions() {
    const ivs = ctx.state.interventions;
    clear(rowsEl, ivs.map(row));
    emptyEl.hidden = ivs.length > 0;
  }

  function remove(iv) {
    const index = ctx.state.interventions.indexOf(iv);
    if (index >= 0) ctx.state.interventions.splice(index, 1);
    ctx.commit();
    renderInterventions();
    refresh();
    (rowsEl.querySelector('.remove') || document.getElementById('add-neuron')).focus();
  }

  async function add(kind, target) {
    let detail;
    try {
      detail = await neuronDetail(target);
    } catch (err) {
      showError(errorEl, err, `cannot add ${kind} on “${target}”`);
      return false;
    }
    const canonical = detail.slug || String(detail.id);
    const iv = kind === 'steer' ? { kind, target: canonical, op: '+', value: OPS['+'].initial }
      : kind === 'filter' ? { kind, target: canonical, threshold: 0 }
        : { kind, target: canonical, item: null, value: PROMOTE_RANGE.initial };
    ctx.state.interventions.push(iv);
    ctx.commit();
    renderInterventions();
    refreshNow();
    const rows = rowsEl.querySelectorAll('.iv');
    rows[rows.length - 1]?.querySelector('input, select')?.focus();
    return true;
  }

  function clearAll() {
    ctx.state.interventions.length = 0;
    ctx.commit();
    renderInterventions();
    refreshNow();
  }

  // -- results ------------------------------------------------------------------------------------
  function base(state) {
    const params = recommendParams(state, { steered: false });
    const key = paramsKey(params);
    if (!baseCache.has(key)) {
      if (baseCache.size > 32) baseCache.clear();
      const pending = getJSON('recommend', params);
      baseCache.set(key, pending);
      pending.catch(() => baseCache.delete(key));
    }
    return baseCache.get(key);
  }

  function showEchoes(response) {
    const lists = { steer: response.steers, filter: response.filters, promote: response.promotes };
    const seen = { steer: 0, filter: 0, promote: 0 };
    for (const iv of ctx.state.interventions) {
      const echo = lists[iv.kind]?.[seen[iv.kind]++];
      const el = echoes.get(iv);
      if (!el || !echo) continue;
      if (iv.kind === 'steer') {
        el.textContent = `activation ${echo.activation_before.toFixed(2)} → ${echo.activation_after.toFixed(2)}`;
      } else if (iv.kind === 'filter') {
        el.textContent = `removes ${echo.items_removed} item${echo.items_removed === 1 ? '' : 's'}`
          + (echo.concept_items == null ? ''
            : ` (${echo.concept_items_removed} of the ${echo.concept_items} labelled ${echo.label})`);
      } else {
        el.textContent = `touches ${echo.items_affected} item${echo.items_affected === 1 ? '' : 's'}`;
      }
    }
  }

  function markInvalid(err) {
    for (const li of rowsEl.querySelectorAll('.iv')) li.classList.remove('invalid');
    if (!(err instanceof ApiError) || !['steer', 'filter', 'promote'].includes(err.parameter)) return;
    ctx.state.interventions.forEach((iv, i) => {
      if (iv.kind === err.parameter && formatSpec(iv) === String(err.value).trim()) {
        rowsEl.children[i]?.classList.add('invalid');
      }
    });
  }

  async function refreshNow() {
    refresh.cancel();
    const state = ctx.state;
    controller?.abort();
    const mine = ++sequence;
    if (!state.user) {
      clear(unsteeredEl);
      clear(steeredEl);
      summaryEl.textContent = 'Pick a user to see recommendations.';
      results.dataset.status = 'idle';
      return;
    }
    controller = new AbortController();
    const params = recommendParams(state);
    results.dataset.status = 'loading';
    results.setAttribute('aria-busy', 'true');
    try {
      const before = base(state);
      const after = state.interventions.length ? getJSON('recommend', params, { signal: controller.signal }) : before;
      // Both settle before either error is shown, the unsteered one first: with a bad user and a
      // bad steer, the user's 404 is the error to show whichever response comes back first.
      const [baseOutcome, steeredOutcome] = await Promise.allSettled([before, after]);
      if (mine !== sequence) return;
      for (const outcome of [baseOutcome, steeredOutcome]) if (outcome.status === 'rejected') throw outcome.reason;
      const [unsteered, steered] = [baseOutcome.value, steeredOutcome.value];
      const d = diffRankings(unsteered.items, steered.items);
      renderRanking(unsteeredEl, d.unsteered);
      renderRanking(steeredEl, d.steered);
      summaryEl.textContent = state.interventions.length
        ? `Steered list: ${summarize(d.counts)}.` : 'No interventions: both lists are the base model’s ranking.';
      showEchoes(steered);
      markInvalid(null);
      showError(errorEl, null);
      results.dataset.rendered = paramsKey(params);
      results.dataset.status = 'ready';
    } catch (err) {
      if (isAbort(err) || mine !== sequence) return;
      showError(errorEl, err, 'recommendations');
      markInvalid(err);
      clear(steeredEl);
      if (err.parameter === 'user') clear(unsteeredEl);
      summaryEl.textContent = '';
      results.dataset.rendered = paramsKey(params);
      results.dataset.status = 'error';
    } finally {
      if (mine === sequence) results.removeAttribute('aria-busy');
    }
  }

  const refresh = debounce(refreshNow, DEBOUNCE_MS);

  // -- the user -----------------------------------------------------------------------------------
  async function loadProfile() {
    const user = ctx.state.user;
    if (!user) {
      clear(profileEl);
      return;
    }
    try {
      const p = await getJSON(`users/${encodeURIComponent(user)}`);
      if (ctx.state.user !== user) return;
      clear(profileEl,
        h('p', null, h('strong', null, p.user), ` · ${p.n_seen} training item${p.n_seen === 1 ? '' : 's'}`),
        p.neurons.length ? h('div', { class: 'chips', role: 'group', 'aria-label': 'Strongest neurons of this user; choose one to steer with it' },
          h('span', { class: 'muted' }, 'Strongest neurons:'),
          p.neurons.map((n) => h('button', {
            type: 'button', class: 'chip', title: `activation ${n.activation.toFixed(2)}, ${n.activation_units.toFixed(2)} × its scale`,
            'aria-label': `Steer with ${n.label} (this user: ${n.activation_units.toFixed(1)} × its typical activation)`,
            onclick: () => ctx.addIntervention('steer', n.slug || String(n.neuron)),
          }, n.label, h('span', { class: 'chip-value', 'aria-hidden': 'true' }, ` ${n.activation_units.toFixed(1)}×`)))) : null,
        p.seen.length ? h('details', null, h('summary', null, 'Some items this user saw'),
          h('ul', { class: 'seen' }, p.seen.map((s) => h('li', null, s.title)))) : null);
    } catch (err) {
      if (ctx.state.user === user) clear(profileEl); // the recommendation error says why
    }
  }

  return { renderInterventions, refresh, refreshNow, add, clearAll, loadProfile };
}

function signed(value) {
  return value > 0 ? `+${num(value)}` : num(value);
}

function valueText(iv) {
  if (iv.kind === 'steer') return `${OPS[iv.op].name} ${signed(iv.value)}`;
  return `${signed(iv.value)} scale units`;
}
