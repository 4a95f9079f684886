// The neuron browser (search by label or slug, paged) and the detail panel (label, confidence,
// activation statistics, concept distribution bars, top items, and buttons that steer with it).

import { getJSON, isAbort, neuronDetail } from './api.js';
import { clear, debounce, h, percent } from './dom.js';
import { showError } from './ui.js';

const PAGE = 50;

function statusBadge(status) {
  return h('span', { class: `status status-${status}` }, status.replace('_', ' '));
}

export function createNeuronBrowser(ctx) {
  const input = document.getElementById('neuron-search');
  const list = document.getElementById('neuron-list');
  const count = document.getElementById('neuron-count');
  const more = document.getElementById('neuron-more');
  const error = document.getElementById('neuron-error');
  let loaded = 0;
  let total = 0;
  let controller = null;

  function row(n) {
    const selected = ctx.selectedId === String(n.id);
    const confidence = n.confidence ?? 0;
    return h('li', { class: selected ? 'selected' : null }, h('button', {
      type: 'button', class: 'neuron-row', 'aria-pressed': selected ? 'true' : 'false',
      dataset: { neuron: String(n.id) }, onclick: () => ctx.selectNeuron(n.slug || String(n.id)),
    },
    h('span', { class: 'neuron-label' }, n.label),
    h('span', { class: 'neuron-meta' },
      h('code', null, n.slug ?? `#${n.id}`),
      n.prefix !== null && n.prefix !== undefined ? h('span', { class: 'level' }, `L${n.prefix}`) : null,
      statusBadge(n.status)),
    h('span', { class: 'confidence' },
      h('meter', { min: '0', max: '1', value: String(confidence), 'aria-hidden': 'true' }),
      h('span', { class: 'visually-hidden' }, 'confidence '),
      n.confidence === null || n.confidence === undefined ? 'n/a' : percent(confidence))));
  }

  async function search(append = false) {
    controller?.abort();
    controller = new AbortController();
    const q = input.value.trim();
    const offset = append ? loaded : 0;
    try {
      const page = await getJSON('neurons', { q, limit: PAGE, offset }, { signal: controller.signal });
      if (!append) { clear(list); loaded = 0; }
      list.append(...page.neurons.map(row));
      loaded += page.neurons.length;
      total = page.total;
      count.textContent = q ? `${total} neuron${total === 1 ? '' : 's'} match “${q}”` : `${total} neurons`;
      more.hidden = loaded >= total;
      showError(error, null);
    } catch (err) {
      if (!isAbort(err)) showError(error, err, 'neuron search');
    }
  }

  const searchSoon = debounce(() => search(false), 200);
  input.addEventListener('input', () => {
    ctx.state.q = input.value.trim();
    ctx.commit();
    searchSoon();
  });
  more.addEventListener('click', () => search(true));
  input.value = ctx.state.q;

  function markSelected() {
    for (const button of list.querySelectorAll('.neuron-row')) {
      const li = button.closest('li');
      const id = button.dataset.neuron;
      button.setAttribute('aria-pressed', String(id === ctx.selectedId));
      li.classList.toggle('selected', id === ctx.selectedId);
    }
  }

  return { search, markSelected };
}

export function createNeuronDetail(ctx) {
  const panel = document.getElementById('neuron-detail');
  let shown = null;

  function concepts(detail) {
    if (!detail.concepts.length) return h('p', { class: 'muted' }, 'No concept distribution.');
    return h('ul', { class: 'bars', 'aria-label': `Concept distribution of ${detail.label}` },
      detail.concepts.map((c) => {
        const fill = h('span', { class: 'bar-fill' });
        fill.style.width = percent(Math.max(0, Math.min(1, c.share)));
        return h('li', { class: 'bar-row' },
          h('span', { class: 'bar-label' }, h('span', { class: 'facet' }, c.facet), ' ', c.concept),
          h('span', { class: 'bar', 'aria-hidden': 'true' }, fill),
          h('span', { class: 'bar-value' }, percent(c.share)));
      }));
  }

  /** The broader concept this neuron refines (concept tree), named once its record arrives. */
  function parentLink(parent) {
    const button = h('button', { type: 'button', class: 'link', onclick: () => ctx.selectNeuron(String(parent)) },
      `neuron ${parent}`);
    neuronDetail(parent).then((p) => { button.textContent = `${p.label} (#${p.id})`; }, () => {});
    return button;
  }

  function stat(term, value) {
    return [h('dt', null, term), h('dd', null, value)];
  }

  function render(d) {
    const target = d.slug || String(d.id);
    clear(panel,
      h('div', { class: 'detail-head' },
        h('h3', { id: 'detail-h', tabindex: '-1' }, d.label),
        h('button', { type: 'button', class: 'close', 'aria-label': 'Close neuron details',
                      onclick: () => ctx.selectNeuron(null) }, '×')),
      h('dl', { class: 'stats' },
        stat('slug', h('code', null, d.slug ?? '—')), stat('index', String(d.id)),
        stat('level', d.prefix === null ? '—' : `prefix ${d.prefix}`), stat('status', statusBadge(d.status)),
        stat('confidence', d.confidence === null ? 'n/a' : percent(d.confidence)),
        stat('activation scale', d.activation_scale.toFixed(3)),
        stat('active on', `${percent(d.user_active_fraction)} of users, ${percent(d.item_active_fraction)} of items`),
        d.parent !== null && d.parent !== undefined ? stat('parent', parentLink(d.parent)) : null,
        // An anchored latent's meaning was taught from the metadata in training, not discovered.
        d.extra?.anchor ? stat('anchored to', h('span', { class: 'anchor', title: 'trained to fire on exactly these items' },
          `${d.extra.anchor.facet} = ${d.extra.anchor.name}`)) : null),
      h('div', { class: 'actions', role: 'group', 'aria-label': `Use ${d.label} on the user` },
        h('button', { type: 'button', onclick: () => ctx.addIntervention('steer', target) }, 'Steer with it'),
        h('button', { type: 'button', onclick: () => ctx.addIntervention('filter', target) }, 'Filter it out'),
        h('button', { type: 'button', onclick: () => ctx.addIntervention('promote', target) }, 'Promote its items')),
      h('h4', null, 'Concept distribution', h('span', { class: 'muted' }, ` (${d.concepts_source})`)),
      concepts(d),
      h('h4', null, 'Top items'),
      d.top_items.length
        ? h('ol', { class: 'top-items' }, d.top_items.map((t) => h('li', null,
          h('span', { class: 'item-title' }, t.title), ' ',
          h('span', { class: 'muted' }, `activation ${Number(t.activation).toFixed(2)}`))))
        : h('p', { class: 'muted' }, 'This neuron fires on no item.'));
    panel.hidden = false;
  }

  async function show(target, { focus = false } = {}) {
    shown = target;
    if (target === null || target === undefined || target === '') {
      panel.hidden = true;
      clear(panel);
      return null;
    }
    panel.setAttribute('aria-busy', 'true');
    try {
      const detail = await neuronDetail(target);
      if (shown !== target) return null;
      render(detail);
      if (focus) panel.querySelector('#detail-h')?.focus();
      return detail;
    } catch (err) {
      if (shown !== target) return null;
      clear(panel, h('div', { class: 'error', role: 'alert' }));
      showError(panel.firstChild, err, `neuron ${target}`);
      panel.hidden = false;
      return null;
    } finally {
      panel.removeAttribute('aria-busy');
    }
  }

  return { show };
}
