/**
 * 儿童主任 — the village child director's field app. One page: the gate
 * screens (sign-in, PIN, unlock, recovery, update notice) and, once
 * unlocked, the app with its sync bar, the children, a child's page, the
 * visit form, the visit lists, the tasks and the settings. Everything is
 * read from and written to the SDK; the app keeps no record of its own.
 */

import { Seedling, SeedlingError } from '../../sdk/src/index.ts';
import { $, h, replace } from './dom.ts';
import { currentLang, setLang, t } from './i18n.ts';
import { clearDataCaches } from './shell.ts';
import { showAgo } from './format.ts';
import { renderRoute, type Ctx } from './screens.ts';

declare const __APP_VERSION__: string;

/** Idle minutes before the app locks behind the PIN. */
const IDLE_LOCK_MS = 5 * 60_000;
const REFRESH_WHILE_SYNCING_MS = 2_000;

type Gate = 'boot' | 'signin' | 'setpin' | 'unlock' | 'recover' | 'update' | 'main';

let s: Seedling;
let gate: Gate = 'boot';
let lastActive = Date.now();
let signingOut = false;
const root = $('#app');

// ------------------------------------------------------------ boot

async function boot(): Promise<void> {
  setLang(currentLang());
  registerServiceWorker();
  try {
    void navigator.storage?.persist?.();
  } catch {
    // Not offered: the browser decides.
  }
  s = await Seedling.open({ baseUrl: location.origin, appVersion: __APP_VERSION__ });
  s.onChange((e) => {
    if (e.kind === 'status') onStatus();
    else if (gate === 'main') refreshView(e.kind);
  });
  window.addEventListener('online', () => renderBar());
  window.addEventListener('offline', () => renderBar());
  window.addEventListener('hashchange', () => {
    if (gate === 'main') void renderView();
  });
  for (const ev of ['pointerdown', 'keydown', 'input', 'touchstart', 'scroll']) {
    window.addEventListener(ev, () => (lastActive = Date.now()), { passive: true, capture: true });
  }
  setInterval(checkIdle, 15_000);
  document.addEventListener('visibilitychange', checkIdle);
  decide();
}

function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => undefined);
}

/** Which screen the state of the store calls for. */
function decide(notice?: string): void {
  const st = s.status().state;
  if (st === 'update_required') return showUpdate();
  if (st === 'revoked') return showSignIn(t('revokedNotice'));
  if (!s.user()) return showSignIn(notice);
  void (async () => {
    const hasPin = await s.hasPin();
    if (s.isLocked()) return hasPin ? showUnlock() : showRecover(true);
    if (!hasPin) return showSetPin();
    showMain();
  })();
}

function onStatus(): void {
  const st = s.status();
  if (st.state === 'update_required') {
    s.stopAutoSync();
    if (gate !== 'update') showUpdate();
    return;
  }
  if (st.state === 'revoked') {
    void clearDataCaches();
    if (gate !== 'signin') showSignIn(t('revokedNotice'));
    return;
  }
  if (st.state === 'signed_out' && !signingOut && gate === 'main') {
    // The session ended on the server; the store and its outbox are kept.
    showSignIn(t('sessionEnded'));
    return;
  }
  // A round ended with a redraw still waiting: draw what it brought now.
  if (st.state !== 'syncing' && refreshTimer) flushRefresh();
  renderBar();
}

function checkIdle(): void {
  if (gate !== 'main' && gate !== 'setpin') return;
  if (Date.now() - lastActive >= IDLE_LOCK_MS) lockNow();
}

function lockNow(): void {
  s.stopAutoSync();
  s.lock();
  showUnlock();
}

// ------------------------------------------------------------ gate screens

function gateScreen(title: string, lead: string | null, ...body: (Node | null)[]): HTMLElement {
  return h(
    'div',
    { class: 'gate' },
    h('div', { class: 'gate-brand' }, h('img', { src: 'icon-192.png', alt: '', width: 56, height: 56 }), h('span', {}, t('appName'))),
    h('h1', {}, title),
    lead ? h('p', { class: 'lead' }, lead) : null,
    ...body,
  );
}

function field(labelText: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, labelText), input);
}

function errorLine(): HTMLElement {
  return h('p', { class: 'error', role: 'alert', 'aria-live': 'assertive' });
}

function signInMessage(e: unknown): string {
  const err = e as { kind?: string; code?: string; retryAfterMs?: number | null };
  switch (err?.code) {
    case 'invalid_credentials':
      return t('badLogin');
    case 'account_disabled':
      return t('accountDisabled');
    case 'device_revoked':
      return t('deviceRevokedSignIn');
    case 'login_throttled':
      return t('loginThrottled', { n: Math.max(1, Math.ceil((err.retryAfterMs ?? 60_000) / 60_000)) });
    case 'pending_for_other_user':
      return t('pendingForOtherUser');
  }
  if (err?.kind === 'network') return t('noNetworkSignIn');
  return t('signInFailed');
}

function showSignIn(notice?: string): void {
  gate = 'signin';
  s?.stopAutoSync();
  const user = h('input', { name: 'username', autocomplete: 'username', autocapitalize: 'off', required: true, id: 'username' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, id: 'password' });
  const err = errorLine();
  const btn = h('button', { class: 'btn primary block', type: 'submit' }, t('signIn'));
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        err.textContent = '';
        btn.disabled = true;
        btn.textContent = t('signingIn');
        try {
          await s.signIn(user.value.trim(), pass.value, deviceName());
          decide();
        } catch (e) {
          err.textContent = signInMessage(e);
          btn.disabled = false;
          btn.textContent = t('signIn');
        }
      },
    },
    field(t('username'), user),
    field(t('password'), pass),
    err,
    btn,
  );
  replace(
    root,
    gateScreen(t('signInTitle'), t('signInLead'), notice ? h('p', { class: 'notice', role: 'status' }, notice) : null, form, langSwitch()),
  );
}

function deviceName(): string {
  const ua = navigator.userAgent;
  const m = /Android [\d.]+; ([^;)]+)/.exec(ua);
  return (m?.[1] ?? (/iPhone|iPad/.test(ua) ? 'iPhone' : 'browser')).slice(0, 60);
}

function pinInput(id: string, autocomplete = 'off'): HTMLInputElement {
  return h('input', {
    id,
    type: 'password',
    inputmode: 'numeric',
    pattern: '[0-9]*',
    maxlength: 6,
    minlength: 4,
    autocomplete,
    class: 'pin',
    required: true,
  });
}

const validPin = (p: string): boolean => /^\d{4,6}$/.test(p);

function showSetPin(): void {
  gate = 'setpin';
  const a = pinInput('pin1', 'new-password');
  const b = pinInput('pin2', 'new-password');
  const err = errorLine();
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        err.textContent = '';
        if (!validPin(a.value)) return void (err.textContent = t('pinRule'));
        if (a.value !== b.value) return void (err.textContent = t('pinMismatch'));
        try {
          await s.setPin(a.value);
          showMain();
        } catch (e) {
          err.textContent = e instanceof SeedlingError ? e.message : t('pinRule');
        }
      },
    },
    field(t('pin'), a),
    field(t('pinAgain'), b),
    err,
    h('button', { class: 'btn primary block', type: 'submit' }, t('savePin')),
  );
  replace(root, gateScreen(t('setPinTitle'), t('setPinLead'), form));
  a.focus();
}

function showUnlock(): void {
  gate = 'unlock';
  const pin = pinInput('pin');
  const err = errorLine();
  const btn = h('button', { class: 'btn primary block', type: 'submit' }, t('unlock'));
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        err.textContent = '';
        btn.disabled = true;
        const ok = validPin(pin.value) && (await s.unlock(pin.value).catch(() => false));
        btn.disabled = false;
        if (!ok) {
          pin.value = '';
          err.textContent = t('wrongPin');
          pin.focus();
          return;
        }
        lastActive = Date.now();
        showMain();
      },
    },
    field(t('pin'), pin),
    err,
    btn,
    h('button', { class: 'btn link block', type: 'button', onclick: () => showRecover(false) }, t('forgotPin')),
  );
  const st = s.status();
  const pending = st.pending > 0 ? h('p', { class: 'muted center' }, t('pendingCount', { n: st.pending })) : null;
  replace(root, gateScreen(t('unlockTitle'), t('unlockLead'), form, pending));
  pin.focus();
}

function showRecover(forced: boolean): void {
  gate = 'recover';
  const known = s.user()?.username ?? '';
  const user = h('input', { id: 'rec-username', autocomplete: 'username', autocapitalize: 'off', required: true, value: known });
  const pass = h('input', { id: 'rec-password', type: 'password', autocomplete: 'current-password', required: true });
  const err = errorLine();
  const btn = h('button', { class: 'btn primary block', type: 'submit' }, t('recover'));
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        err.textContent = '';
        btn.disabled = true;
        try {
          await s.recoverWithSignIn(user.value.trim(), pass.value);
          showSetPin();
        } catch (e) {
          btn.disabled = false;
          if (e instanceof SeedlingError && e.code === 'recovery_unavailable') err.textContent = t('recoverFailed');
          else err.textContent = signInMessage(e);
        }
      },
    },
    field(t('username'), user),
    field(t('password'), pass),
    err,
    btn,
    forced ? null : h('button', { class: 'btn link block', type: 'button', onclick: () => showUnlock() }, t('back')),
  );
  replace(root, gateScreen(t('recoverTitle'), t('recoverLead'), form));
}

function showUpdate(): void {
  gate = 'update';
  replace(
    root,
    h(
      'div',
      { class: 'gate update', role: 'alertdialog', 'aria-labelledby': 'upd-title' },
      h('h1', { id: 'upd-title' }, t('updateTitle')),
      h('p', { class: 'lead' }, t('updateText')),
      h(
        'button',
        {
          class: 'btn primary block',
          type: 'button',
          onclick: async () => {
            const reg = await navigator.serviceWorker?.getRegistration().catch(() => undefined);
            await reg?.update().catch(() => undefined);
            location.reload();
          },
        },
        t('updateNow'),
      ),
    ),
  );
}

function langSwitch(): HTMLElement {
  return h(
    'div',
    { class: 'lang-switch' },
    h('button', { type: 'button', class: 'btn link', 'aria-pressed': String(currentLang() === 'zh'), onclick: () => switchLang('zh') }, '中文'),
    h('button', { type: 'button', class: 'btn link', 'aria-pressed': String(currentLang() === 'en'), onclick: () => switchLang('en') }, 'English'),
  );
}

function switchLang(l: 'zh' | 'en'): void {
  setLang(l);
  if (gate === 'main') showMain();
  else decide();
}

// ------------------------------------------------------------ the app

let bar: HTMLElement | null = null;
let view: HTMLElement | null = null;
let nav: HTMLElement | null = null;
let title: HTMLElement | null = null;
let backBtn: HTMLButtonElement | null = null;
let viewIsForm = false;

function showMain(): void {
  gate = 'main';
  title = h('h1', { class: 'title', id: 'title' }, t('appName'));
  backBtn = h('button', { class: 'back', type: 'button', 'aria-label': t('back'), hidden: true, onclick: () => history.back() }, '‹');
  bar = h('div', { class: 'syncbar', id: 'syncbar', role: 'status', 'aria-live': 'polite' });
  view = h('main', { id: 'view', class: 'view' });
  nav = h('nav', { class: 'tabs', id: 'tabs', 'aria-label': t('appName') });
  replace(root, h('header', { class: 'top' }, backBtn, title), bar, view, nav);
  renderBar();
  void renderView();
  s.startAutoSync({ intervalMs: 60_000 });
}

function ctx(): Ctx {
  return {
    s,
    setTitle(text: string, back: boolean) {
      if (title) title.textContent = text;
      if (backBtn) backBtn.hidden = !back;
      document.title = `${text} · ${t('appName')}`;
    },
    go(hash: string, replaceEntry = false) {
      if (replaceEntry) history.replaceState(null, '', hash);
      else history.pushState(null, '', hash);
      void renderView();
    },
    toast,
    confirm: confirmDialog,
    lockNow,
    signOut: doSignOut,
    switchLang,
    markForm(isForm: boolean) {
      viewIsForm = isForm;
    },
  };
}

async function renderView(): Promise<void> {
  if (!view || gate !== 'main') return;
  viewIsForm = false;
  try {
    await renderRoute(ctx(), view);
  } catch (e) {
    if (e instanceof SeedlingError && e.code === 'locked') return showUnlock();
    throw e;
  }
  await renderNav();
}

let refreshTimer: ReturnType<typeof setTimeout> | null = null;
/**
 * Draws the screen again after records changed: within 150 ms, but while a
 * sync round runs at most every 2 s (a large bootstrap sends a change per
 * page, and drawing a long list after each one doubled its time), and at
 * once when the round ends.
 */
function refreshView(_kind: string): void {
  if (refreshTimer) return;
  const syncing = s.status().state === 'syncing';
  refreshTimer = setTimeout(flushRefresh, syncing ? REFRESH_WHILE_SYNCING_MS : 150);
}

function flushRefresh(): void {
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
  if (gate !== 'main') return;
  if (viewIsForm) void renderNav();
  else void renderView();
}

async function renderNav(): Promise<void> {
  if (!nav || s.isLocked()) return;
  const route = location.hash.split('/')[1] ?? 'children';
  const tasks = (await s.tasks()).length;
  const item = (hash: string, key: 'navChildren' | 'navVisits' | 'navTasks' | 'navMe', icon: string, badge = 0) =>
    h(
      'a',
      { href: `#/${hash}`, class: 'tab', 'aria-current': route === hash || (hash === 'children' && ['', 'child', 'visit'].includes(route)) ? 'page' : null },
      h('span', { class: 'tab-icon', 'aria-hidden': 'true' }, icon),
      h('span', {}, t(key)),
      badge > 0 ? h('span', { class: 'badge bad', 'aria-label': String(badge) }, String(badge)) : null,
    );
  replace(nav, item('children', 'navChildren', '◉'), item('visits', 'navVisits', '☰'), item('tasks', 'navTasks', '✎', tasks), item('me', 'navMe', '☺'));
}

function renderBar(): void {
  if (!bar || gate !== 'main') return;
  const st = s.status();
  const online = navigator.onLine;
  let state = st.state as string;
  if (!online && state !== 'syncing') state = 'offline';
  const text = ((): string => {
    switch (state) {
      case 'idle':
        return st.pending > 0 ? t('sync_offline') : t('sync_idle');
      case 'offline':
        return t('sync_offline');
      case 'syncing':
        return t('sync_syncing');
      case 'error':
        return t('sync_error');
      case 'locked':
        return t('sync_locked');
      case 'update_required':
        return t('sync_update_required');
      case 'revoked':
        return t('sync_revoked');
      default:
        return t('sync_signed_out');
    }
  })();
  const shown = state === 'idle' && st.pending > 0 ? 'waiting' : state;
  const detail: string[] = [];
  detail.push(st.pending > 0 ? t('pendingCount', { n: st.pending }) : t('allSent'));
  if (st.pendingPhotos > 0) detail.push(t('photosPending', { n: st.pendingPhotos }));
  detail.push(st.lastSyncAt ? t('lastSync', { t: showAgo(st.lastSyncAt) }) : t('neverSynced'));
  let why: string | null = null;
  if (state === 'offline') why = t('offlineDetail');
  else if (state === 'error') {
    const code = st.lastError?.code ?? '';
    why = code === 'diverged' ? t('err_diverged') : /^(5|database|timeout|server|internal)/.test(code) ? t('err_server') : t('err_generic');
  }
  bar.dataset['state'] = shown;
  bar.dataset['pending'] = String(st.pending + st.pendingPhotos);
  bar.dataset['lastSync'] = st.lastSyncAt ? String(st.lastSyncAt) : '';
  replace(
    bar,
    h(
      'div',
      { class: 'syncbar-main' },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('div', { class: 'syncbar-text' }, h('strong', { id: 'sync-state' }, text), h('span', { class: 'syncbar-detail', id: 'sync-detail' }, detail.join(' · '))),
      h(
        'button',
        {
          class: 'btn small',
          type: 'button',
          id: 'sync-now',
          disabled: state === 'syncing',
          onclick: () => void s.sync(),
        },
        t('syncNow'),
      ),
    ),
    why ? h('p', { class: 'syncbar-why' }, why) : null,
  );
}

// ------------------------------------------------------------ dialogs

function toast(text: string): void {
  const el = h('div', { class: 'toast', role: 'status' }, text);
  document.body.appendChild(el);
  setTimeout(() => el.remove(), 2600);
}

function confirmDialog(message: (string | Node)[], okText: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      overlay.remove();
      resolve(v);
    };
    const overlay = h(
      'div',
      { class: 'overlay' },
      h(
        'div',
        { class: 'dialog', role: 'alertdialog', 'aria-modal': 'true' },
        ...message.map((m) => (typeof m === 'string' ? h('p', {}, m) : m)),
        h(
          'div',
          { class: 'dialog-actions' },
          h('button', { class: 'btn secondary', type: 'button', onclick: () => done(false) }, t('cancel')),
          h('button', { class: danger ? 'btn danger' : 'btn primary', type: 'button', id: 'dialog-ok', onclick: () => done(true) }, okText),
        ),
      ),
    );
    document.body.appendChild(overlay);
  });
}

async function doSignOut(): Promise<void> {
  const st = s.status();
  const msg: string[] = [t('signOutConfirm')];
  if (st.pending > 0) msg.push(t('signOutPending', { n: st.pending }));
  if (!navigator.onLine) msg.push(t('signOutOffline'));
  if (!(await confirmDialog(msg, t('signOut')))) return;
  signingOut = true;
  try {
    await s.signOut();
    await clearDataCaches();
  } finally {
    signingOut = false;
  }
  history.replaceState(null, '', '#/children');
  showSignIn(t('wipedNotice'));
}

void boot();
