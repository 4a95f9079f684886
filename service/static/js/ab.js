// A/B arm preview: what each arm of an experiment would show the current user. Each arm's list is
// GET /recommend with ab=EXPERIMENT:ARM (the API's QA override) and none of the page's own
// interventions; treatment arms are highlighted against the control arm's list.

import { getJSON, isAbort } from './api.js';
import { diffRankings, summarize } from './diff.js';
import { clear, debounce, h } from './dom.js';
import { recommendParams } from './state.js';
import { renderRanking, showError } from './ui.js';

export function createABPreview(ctx) {
  const select = document.getElementById('experiment');
  const controls = document.getElementById('ab-controls');
  const info = document.getElementById('ab-info');
  const error = document.getElementById('ab-error');
  const arms = document.getElementById('ab-arms');
  const section = document.getElementById('ab');
  let listing = null;
  let sequence = 0;
  let controller = null;

  function fillSelect() {
    const names = listing.experiments.map((e) => e.name);
    if (!names.includes(ctx.state.experiment)) {
      const mine = listing.assignment?.experiment;
      ctx.state.experiment = mine || listing.experiments.find((e) => e.enabled)?.name || names[0] || null;
    }
    clear(select, listing.experiments.map((e) => h('option', { value: e.name, selected: e.name === ctx.state.experiment },
      `${e.name}${e.enabled ? '' : ' (disabled)'} · ${e.arms.length} arms`)));
  }

  function specs(arm) {
    const all = [...arm.steer.map((s) => `steer=${s}`), ...arm.filter.map((s) => `filter=${s}`),
      ...arm.promote.map((s) => `promote=${s}`)];
    return all.length ? h('ul', { class: 'specs' }, all.map((s) => h('li', null, h('code', null, s))))
      : h('p', { class: 'specs muted' }, 'no steering (base model)');
  }

  async function refreshNow() {
    refresh.cancel();
    const mine = ++sequence;
    controller?.abort();
    controller = new AbortController();
    const user = ctx.state.user;
    section.dataset.status = 'loading';
    try {
      listing = await getJSON('experiments', { user }, { signal: controller.signal });
      if (mine !== sequence) return;
      if (!listing.experiments.length) {
        controls.hidden = true;
        info.textContent = 'This server runs no A/B experiments (start it with --experiments FILE).';
        clear(arms);
        section.dataset.status = 'ready';
        return;
      }
      controls.hidden = false;
      fillSelect();
      const experiment = listing.experiments.find((e) => e.name === ctx.state.experiment);
      const assigned = listing.assignment;
      if (!user) {
        info.textContent = 'Pick a user to preview each arm.';
        clear(arms);
        section.dataset.status = 'ready';
        return;
      }
      info.textContent = assigned
        ? `By hash, ${user} is in ${assigned.experiment}, arm ${assigned.arm}.`
        : `By hash, ${user} is in no running experiment. Forced previews below.`;
      const lists = await Promise.all(experiment.arms.map((arm) => getJSON('recommend',
        recommendParams(ctx.state, { steered: false, ab: arm.override }), { signal: controller.signal })));
      if (mine !== sequence) return;
      const controlIndex = Math.max(0, experiment.arms.findIndex((a) => a.control));
      const control = lists[controlIndex].items;
      clear(arms, experiment.arms.map((arm, i) => {
        const list = h('ol', { class: 'ranking' });
        const isControl = i === controlIndex;
        const d = diffRankings(control, lists[i].items);
        renderRanking(list, isControl ? lists[i].items.map((it, j) => ({ ...it, rank: j + 1 })) : d.steered,
          { annotate: !isControl });
        const own = assigned && assigned.experiment === experiment.name && assigned.arm === arm.name;
        return h('section', { class: `arm${own ? ' assigned' : ''}`, dataset: { arm: arm.name }, 'aria-label': `Arm ${arm.name}` },
          h('h4', null, arm.name,
            isControl ? h('span', { class: 'tag' }, 'control') : null,
            own ? h('span', { class: 'tag tag-own' }, 'this user’s arm') : null),
          h('p', { class: 'muted' }, `weight ${arm.weight} · `, h('code', null, `ab=${arm.override}`)),
          specs(arm),
          isControl ? null : h('p', { class: 'muted arm-summary' }, `vs control: ${summarize(d.counts)}`),
          list);
      }));
      showError(error, null);
      section.dataset.status = 'ready';
      section.dataset.rendered = `${user}|${ctx.state.experiment}|${ctx.state.k}|${ctx.state.excludeSeen}`;
    } catch (err) {
      if (isAbort(err) || mine !== sequence) return;
      showError(error, err, 'A/B preview');
      clear(arms);
      section.dataset.status = 'error';
    }
  }

  const refresh = debounce(refreshNow, 150);
  select.addEventListener('change', () => {
    ctx.state.experiment = select.value;
    ctx.commit();
    refreshNow();
  });

  return { refresh, refreshNow };
}
