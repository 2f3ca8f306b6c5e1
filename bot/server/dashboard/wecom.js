// wecombot console: the WeCom sync (同步企业微信) progress bar and the staff
// transfer (员工交接) panel. Self-contained beside app.js: its own strings,
// its own fetches with the admin token app.js keeps in sessionStorage, text
// only through textContent.
'use strict';

(() => {
  const TOKEN_KEY = 'wecombot.token';
  const LANG_KEY = 'wecombot.lang';
  const S = {
    zh: {
      sync: '同步企业微信', start: '立即同步', running: '同步中', done: '已完成', failed: '已停止', never: '还没有同步过',
      relations: '客户关系', customers: '客户', groups: '客户群', new: '新增', updated: '更新', gone: '流失', eta: '预计剩余',
      calls: '接口调用', outOfRange: '不在应用可见范围、未同步的员工', transfer: '员工交接', from: '交出员工', to: '接替员工',
      resigned: '已离职（离职继承）', customersList: '客户 ID（逗号分隔，留空为全部）', submit: '提交交接', transfers: '交接记录',
      unassigned: '离职待分配客户', load: '查看', waiting: '等待接替', requested: '已提交', close: '收起', open: '同步与交接',
      nothing: '没有。',
    },
    en: {
      sync: 'WeCom sync', start: 'Sync now', running: 'running', done: 'done', failed: 'stopped', never: 'No sync has run yet',
      relations: 'relations', customers: 'customers', groups: 'groups', new: 'new', updated: 'updated', gone: 'gone', eta: 'ETA',
      calls: 'API calls', outOfRange: 'Staff outside the app\'s visible range (not synced)', transfer: 'Staff transfer', from: 'From',
      to: 'To', resigned: 'Has left (离职继承)', customersList: 'Customer ids (comma-separated; empty: all)', submit: 'Transfer',
      transfers: 'Transfers', unassigned: 'Customers of departed staff', load: 'Show', waiting: 'waiting', requested: 'requested',
      close: 'Close', open: 'Sync & transfer', nothing: 'None.',
    },
  };
  const t = (k) => {
    const lang = localStorage.getItem(LANG_KEY) || document.body.dataset.lang || 'zh';
    return (S[lang] && S[lang][k]) || S.en[k] || k;
  };
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  async function call(path, opts = {}) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (opts.body) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body ? JSON.stringify(opts.body) : undefined });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data && (data.detail || data.error || data.title)) || res.statusText);
    return data;
  }
  const fmtDur = (s) => (s >= 3600 ? `${Math.floor(s / 3600)}h${Math.round((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${Math.round(s)}s`);

  const panel = el('section', 'wecom-panel');
  panel.id = 'wecom-panel';
  panel.hidden = true;
  const toggle = el('button', 'wecom-toggle', t('open'));
  toggle.id = 'wecom-toggle';
  toggle.type = 'button';
  toggle.onclick = () => { panel.hidden = !panel.hidden; toggle.textContent = panel.hidden ? t('open') : t('close'); if (!panel.hidden) refresh(); };

  // ---- sync ----
  const syncBox = el('div', 'wecom-sync');
  syncBox.id = 'sync-progress';
  const bar = el('div', 'wecom-bar');
  const fill = el('div', 'wecom-fill');
  bar.append(fill);
  const line = el('p', 'wecom-line');
  line.id = 'sync-line';
  const startBtn = el('button', null, t('start'));
  startBtn.id = 'sync-start';
  startBtn.type = 'button';
  startBtn.onclick = async () => { startBtn.disabled = true; try { await call('/api/v1/sync', { method: 'POST', body: {} }); } catch (e) { line.textContent = e.message; } startBtn.disabled = false; refresh(); };
  syncBox.append(el('h3', null, t('sync')), bar, line, startBtn);

  let timer = 0;
  async function refreshSync() {
    let v;
    try { v = await call('/api/v1/sync'); } catch (e) { line.textContent = e.message; return false; }
    const r = v.run;
    if (!r) { line.textContent = v.detail || t('never'); fill.style.width = '0%'; return false; }
    const pct = Math.round((v.ratio || 0) * 100);
    fill.style.width = pct + '%';
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuenow', String(pct));
    const status = r.status === 'running' ? t('running') : r.status === 'done' ? t('done') : t('failed');
    let s = `${status} ${pct}% · ${r.relations}/${r.estimate || '?'} ${t('relations')} · ${r.customers} ${t('customers')} ` +
      `(${t('new')} ${r.new}, ${t('updated')} ${r.updated}, ${t('gone')} ${r.gone}) · ${r.groups} ${t('groups')}`;
    if (v.eta_seconds > 0) s += ` · ${t('eta')} ${fmtDur(v.eta_seconds)}`;
    if (v.calls) s += ` · ${t('calls')} ${v.calls}`;
    if (r.error) s += ` — ${r.error}`;
    line.textContent = s;
    line.dataset.status = r.status;
    syncBox.querySelector('.wecom-oor')?.remove();
    if (r.out_of_range && r.out_of_range.length) syncBox.append(el('p', 'wecom-oor', `${t('outOfRange')}: ${r.out_of_range.join(', ')}`));
    return v.running;
  }

  // ---- transfer ----
  const trBox = el('div', 'wecom-transfer');
  const form = el('form');
  form.id = 'transfer-form';
  const input = (name, label, type) => {
    const l = el('label', null, label + ' ');
    const i = el('input');
    i.name = name;
    i.type = type || 'text';
    l.append(i);
    return l;
  };
  form.append(input('from', t('from')), input('to', t('to')), input('customers', t('customersList')), input('resigned', t('resigned'), 'checkbox'));
  const submit = el('button', null, t('submit'));
  submit.type = 'submit';
  const trMsg = el('p', 'wecom-line');
  form.append(submit, trMsg);
  form.onsubmit = async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const customers = String(fd.get('customers') || '').split(',').map((x) => x.trim()).filter(Boolean);
    try {
      const r = await call('/api/v1/transfers', { method: 'POST', body: { from: fd.get('from'), to: fd.get('to'), customers, resigned: fd.get('resigned') === 'on' } });
      trMsg.textContent = r.id + ' · ' + r.detail;
    } catch (err) { trMsg.textContent = err.message; }
    refreshTransfers();
  };
  const trList = el('div');
  trList.id = 'transfer-list';
  const unBtn = el('button', null, t('load'));
  unBtn.type = 'button';
  const unList = el('div');
  unList.id = 'unassigned-list';
  unBtn.onclick = async () => {
    try {
      const v = await call('/api/v1/transfers/unassigned');
      unList.replaceChildren(...(v.customers.length ? v.customers.map((c) => el('div', null, `${c.handover_userid} → ${c.external_userid}${c.name ? ' ' + c.name : ''}`)) : [el('p', 'muted', v.detail || t('nothing'))]));
    } catch (err) { unList.textContent = err.message; }
  };
  trBox.append(el('h3', null, t('transfer')), form, el('h4', null, t('transfers')), trList, el('h4', null, t('unassigned')), unBtn, unList);

  async function refreshTransfers() {
    try {
      const v = await call('/api/v1/transfers');
      trList.replaceChildren(...(v.transfers.length ? v.transfers.slice(0, 10).map((x) => {
        const c = x.counts || {};
        const row = el('div', 'wecom-tr', `${x.id}: ${x.from} → ${x.to} · ${t('done')} ${c.done || 0}, ${t('waiting')} ${(c.waiting || 0) + (c.requested || 0)}, ${t('failed')} ${c.failed || 0} · ${t('groups')} ${x.groups_moved}`);
        for (const [id, why] of Object.entries(x.failures || {})) row.append(el('div', 'muted', `${id}: ${why}`));
        return row;
      }) : [el('p', 'muted', t('nothing'))]));
    } catch (err) { trList.textContent = err.message; }
  }

  async function refresh() {
    clearTimeout(timer);
    const running = await refreshSync();
    await refreshTransfers();
    if (!panel.hidden || running) timer = setTimeout(refresh, running ? 2000 : 15000);
  }

  panel.append(syncBox, trBox);
  function mount() {
    if (!document.getElementById('wecom-panel')) document.body.append(toggle, panel);
  }
  // app.js re-renders the body on language changes: mount again.
  new MutationObserver(mount).observe(document.body, { childList: true });
  window.addEventListener('DOMContentLoaded', () => { mount(); refreshSync().then((running) => { if (running) { panel.hidden = false; toggle.textContent = t('close'); refresh(); } }); });
})();
