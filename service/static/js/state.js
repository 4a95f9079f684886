// The page's state and its two text forms: the API's spec grammar (steer=, filter=, promote=,
// docs/steering.md) and the page URL, which uses the same grammar so a shared link reads like a
// /recommend request. Pure functions only: no DOM, no network.

export const OPS = {
  '+': { name: 'add', min: -10, max: 10, step: 0.5, initial: 2 },
  '=': { name: 'set', min: -10, max: 10, step: 0.5, initial: 0 },
  '*': { name: 'scale', min: -3, max: 5, step: 0.1, initial: 2 },
};
export const PROMOTE_RANGE = { min: -10, max: 10, step: 0.5, initial: 2 };
export const K_CHOICES = [5, 10, 20, 50];
const DEFAULT_K = 10;

const TARGET = '([A-Za-z0-9][A-Za-z0-9_-]*)';
const NUMBER = '((?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?)';
// An unencoded '+' in a URL arrives as a space, so whitespace where the operator belongs means add.
const STEER_RE = new RegExp(`^\\s*${TARGET}\\s*:(?:([-+=*])|\\s+)([-+]?)${NUMBER}\\s*$`);
const FILTER_RE = new RegExp(`^\\s*${TARGET}\\s*(?::\\s*>\\s*${NUMBER})?\\s*$`);
const PROMOTE_RE = new RegExp(`^\\s*(?:([^@\\s][^@]*?)\\s*@\\s*)?${TARGET}\\s*:(?:([-+])|\\s+)${NUMBER}\\s*$`);

/** A number as the shortest text that reads back the same after rounding to 4 decimals. */
export function num(value) {
  return String(Number(Number(value).toFixed(4)));
}

export function formatSpec(iv) {
  if (iv.kind === 'steer') {
    if (iv.op === '+') return `${iv.target}:${iv.value < 0 ? '-' : '+'}${num(Math.abs(iv.value))}`;
    return `${iv.target}:${iv.op}${num(iv.value)}`;
  }
  if (iv.kind === 'filter') return iv.threshold > 0 ? `${iv.target}:>${num(iv.threshold)}` : iv.target;
  const item = iv.item ? `${iv.item}@` : '';
  return `${item}${iv.target}:${iv.value < 0 ? '-' : '+'}${num(Math.abs(iv.value))}`;
}

/** One spec of the given kind -> an intervention, or null when it does not follow the grammar. */
export function parseSpec(kind, text) {
  let m;
  if (kind === 'steer' && (m = STEER_RE.exec(text))) {
    const [, target, rawOp = '+', sign, value] = m;
    if ((rawOp === '+' || rawOp === '-') && sign) return null; // the API refuses "horror:+-3" too
    const signed = Number(value) * (sign === '-' ? -1 : 1);
    if (rawOp === '-') return { kind, target, op: '+', value: -signed };
    return { kind, target, op: rawOp, value: signed };
  }
  if (kind === 'filter' && (m = FILTER_RE.exec(text))) {
    return { kind, target: m[1], threshold: m[2] === undefined ? 0 : Number(m[2]) };
  }
  if (kind === 'promote' && (m = PROMOTE_RE.exec(text))) {
    const [, item, target, op = '+', value] = m;
    return { kind, target, item: item || null, value: Number(value) * (op === '-' ? -1 : 1) };
  }
  return null;
}

export function initialState() {
  return { user: '', k: DEFAULT_K, excludeSeen: true, interventions: [], neuron: null, view: 'neurons',
           q: '', experiment: null };
}

/** Page query string -> { state, problems }: specs that do not parse are reported, not guessed. */
export function stateFromQuery(search) {
  const params = new URLSearchParams(search);
  const state = initialState();
  const problems = [];
  state.user = (params.get('user') || '').trim();
  const k = Number(params.get('k'));
  if (params.has('k')) {
    if (Number.isInteger(k) && k >= 1 && k <= 100) state.k = k;
    else problems.push(`k=${params.get('k')} ignored: an integer 1..100`);
  }
  state.excludeSeen = !['0', 'false', 'no', 'off'].includes((params.get('exclude_seen') || '').toLowerCase());
  for (const kind of ['steer', 'filter', 'promote']) {
    for (const text of params.getAll(kind)) {
      const iv = parseSpec(kind, text);
      if (iv) state.interventions.push(iv);
      else problems.push(`${kind}=${text} ignored: it does not follow the ${kind} grammar (docs/steering.md)`);
    }
  }
  state.neuron = params.get('neuron') || null;
  state.view = params.get('view') === 'tree' ? 'tree' : 'neurons';
  state.q = params.get('q') || '';
  state.experiment = params.get('experiment') || null;
  return { state, problems };
}

/** The state as a page query string (defaults left out), in a stable order. */
export function queryFromState(state) {
  const params = new URLSearchParams();
  if (state.user) params.set('user', state.user);
  if (state.k !== DEFAULT_K) params.set('k', String(state.k));
  if (!state.excludeSeen) params.set('exclude_seen', 'false');
  for (const kind of ['steer', 'filter', 'promote']) {
    for (const iv of state.interventions) if (iv.kind === kind) params.append(kind, formatSpec(iv));
  }
  if (state.neuron !== null && state.neuron !== '') params.set('neuron', String(state.neuron));
  if (state.view !== 'neurons') params.set('view', state.view);
  if (state.q) params.set('q', state.q);
  if (state.experiment) params.set('experiment', state.experiment);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** /recommend parameters for the state's own list: the explorer always opts out of A/B
 *  assignment (ab=off), so "steered" means exactly the interventions on the page. */
export function recommendParams(state, { steered = true, ab = 'off' } = {}) {
  const params = { user: state.user, k: String(state.k), exclude_seen: String(state.excludeSeen), ab };
  if (steered) {
    for (const kind of ['steer', 'filter', 'promote']) {
      params[kind] = state.interventions.filter((iv) => iv.kind === kind).map(formatSpec);
    }
  }
  return params;
}
