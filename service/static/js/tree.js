// The Matryoshka concept tree (GET /concepts/tree): roots grouped by prefix level, each branch a
// disclosure button (aria-expanded) whose children are rendered when it is first opened.

import { getJSON } from './api.js';
import { clear, h, percent, uid } from './dom.js';
import { showError } from './ui.js';

export function createTree(ctx) {
  const container = document.getElementById('tree');
  const info = document.getElementById('tree-info');
  const error = document.getElementById('tree-error');
  let nodes = null;
  let loading = null;

  function node(n) {
    const kids = n.children.filter((c) => nodes.has(c));
    const li = h('li', { class: 'node', dataset: { neuron: String(n.id) } });
    const label = h('button', {
      type: 'button', class: 'node-label', 'aria-pressed': String(ctx.selectedId === String(n.id)),
      onclick: () => ctx.selectNeuron(n.slug || String(n.id)),
    }, n.label);
    const meta = h('span', { class: 'node-meta' },
      h('code', null, n.slug ?? `#${n.id}`),
      n.confidence === null || n.confidence === undefined ? null : h('span', { class: 'muted' }, percent(n.confidence)));
    if (!kids.length) {
      li.append(h('span', { class: 'toggle-spacer', 'aria-hidden': 'true' }), label, meta);
      return li;
    }
    const childrenId = uid('branch');
    const toggle = h('button', {
      type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-controls': childrenId,
      'aria-label': `${kids.length} narrower concept${kids.length === 1 ? '' : 's'} under ${n.label}`,
    }, h('span', { 'aria-hidden': 'true' }, '▸'));
    const count = h('span', { class: 'child-count' }, `${kids.length} ↳`);
    const branch = h('ul', { id: childrenId, class: 'branch', hidden: true });
    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      if (open && !branch.childElementCount) branch.append(...kids.map((c) => node(nodes.get(c))));
      toggle.setAttribute('aria-expanded', String(open));
      branch.hidden = !open;
      li.classList.toggle('open', open);
    });
    li.append(toggle, label, meta, count, branch);
    return li;
  }

  function render(tree) {
    nodes = new Map(tree.nodes.map((n) => [n.id, n]));
    const byLevel = new Map();
    const roots = tree.roots.map((id) => nodes.get(id)).filter(Boolean);
    // Branches first, then the most confident: the interesting part of a level comes first.
    roots.sort((a, b) => (a.prefix ?? 0) - (b.prefix ?? 0) || (b.children.length > 0) - (a.children.length > 0)
      || (b.confidence ?? 0) - (a.confidence ?? 0) || a.id - b.id);
    for (const r of roots) {
      const level = r.prefix ?? 0;
      if (!byLevel.has(level)) byLevel.set(level, []);
      byLevel.get(level).push(r);
    }
    const source = { 'concept_tree.json': 'concept_tree.json', 'neurons.json': 'parent links of neurons.json',
                     computed: 'prefix levels only (bundle not interpreted)' }[tree.source] || tree.source;
    info.textContent = `${tree.nodes.length} live neurons, ${roots.length} roots · from ${source}`;
    clear(container, [...byLevel.entries()].map(([level, items]) => {
      const headingId = uid('level');
      const size = tree.prefixes[level];
      const from = level === 0 ? 0 : tree.prefixes[level - 1];
      return h('section', { class: 'level-group', 'aria-labelledby': headingId },
        h('h3', { id: headingId }, `Level ${level}`,
          size !== undefined ? h('span', { class: 'muted' }, ` · neurons ${from}–${size - 1}`) : null,
          h('span', { class: 'muted' }, ` · ${items.length} root${items.length === 1 ? '' : 's'}`)),
        h('ul', { class: 'tree-roots' }, items.map(node)));
    }));
  }

  async function load() {
    if (!loading) {
      loading = getJSON('concepts/tree').then(render, (err) => {
        loading = null;
        showError(error, err, 'concept tree');
      });
    }
    return loading;
  }

  function markSelected() {
    for (const button of container.querySelectorAll('.node-label')) {
      button.setAttribute('aria-pressed', String(button.closest('li').dataset.neuron === ctx.selectedId));
    }
  }

  return { load, markSelected };
}
