/**
 * The screens inside the unlocked app, one per route:
 * `#/children`, `#/child/<id>`, `#/visit/new/<childId>`, `#/visit/<id>`,
 * `#/visits/<drafts|waiting|synced|returned>`, `#/tasks`, `#/me`.
 */

import type { ChildView, Seedling, VisitView } from '../../sdk/src/index.ts';
import { h, replace } from './dom.ts';
import { ageOn, showDay, showDayWithYear, showInstant } from './format.ts';
import { label, t, textOrLabel } from './i18n.ts';
import { renderVisitForm } from './visit-form.ts';

export interface Ctx {
  s: Seedling;
  setTitle(text: string, back: boolean): void;
  go(hash: string, replaceEntry?: boolean): void;
  toast(text: string): void;
  confirm(message: (string | Node)[], okText: string, danger?: boolean): Promise<boolean>;
  lockNow(): void;
  signOut(): Promise<void>;
  switchLang(l: 'zh' | 'en'): void;
  markForm(isForm: boolean): void;
}

export async function renderRoute(c: Ctx, view: HTMLElement): Promise<void> {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const [route = '', a, b] = parts;
  window.scrollTo?.(0, 0);
  switch (route) {
    case 'child':
      return childPage(c, view, a ?? '');
    case 'visit':
      c.markForm(true);
      if (a === 'new') return renderVisitForm(c, view, { childId: b ?? '' });
      return renderVisitForm(c, view, { visitId: a ?? '' });
    case 'visits':
      return visitLists(c, view, (a as Tab) || 'drafts');
    case 'tasks':
      return tasksPage(c, view);
    case 'me':
      return mePage(c, view);
    default:
      return childrenPage(c, view);
  }
}

// ------------------------------------------------------------ badges

export function dueBadge(child: ChildView): HTMLElement | null {
  const d = child.due;
  switch (d.status) {
    case 'overdue':
      return h('span', { class: 'badge bad' }, t('overdue', { n: d.days_overdue ?? 0 }));
    case 'due_today':
      return h('span', { class: 'badge warn' }, t('dueToday'));
    case 'upcoming':
      return h('span', { class: 'badge ok' }, t('dueOn', { d: showDay(d.due_date) }));
    default:
      return null;
  }
}

export function stateBadge(v: VisitView): HTMLElement {
  const cls = { draft: 'muted', waiting: 'warn', synced: 'ok', returned: 'bad', approved: 'ok' }[v.localState];
  return h('span', { class: `badge ${cls}` }, v.localState === 'approved' ? t('state_approved') : t(`state_${v.localState}`));
}

const urgentBadge = (): HTMLElement => h('span', { class: 'badge urgent' }, `! ${t('urgent')}`);

// ------------------------------------------------------------ children

async function childrenPage(c: Ctx, view: HTMLElement): Promise<void> {
  c.setTitle(t('myChildren'), false);
  const kids = await c.s.children();
  const search = h('input', { type: 'search', class: 'search', placeholder: t('search'), 'aria-label': t('search'), id: 'search' });
  const list = h('ul', { class: 'cards', id: 'children' });
  const fill = () => {
    const q = search.value.trim();
    replace(
      list,
      kids
        .filter((k) => !q || k.name.includes(q))
        .map((k) =>
          h(
            'li',
            {},
            h(
              'a',
              { class: 'card child-card', href: `#/child/${k.id}`, 'data-child': k.id },
              h(
                'div',
                { class: 'card-row' },
                h('strong', { class: 'name' }, k.name),
                h('span', { class: 'muted' }, ageText(k)),
                h('span', { class: 'spacer' }),
                k.urgent ? urgentBadge() : null,
                dueBadge(k),
              ),
              h(
                'div',
                { class: 'card-row muted small' },
                h('span', {}, label('cat_', k.category, 'cat_other')),
                h('span', {}, k.last_visit_on ? t('lastVisit', { d: showDayWithYear(k.last_visit_on) }) : t('neverVisited')),
              ),
            ),
          ),
        ),
    );
    if (!list.firstChild) list.appendChild(h('li', { class: 'empty' }, kids.length ? t('emptyList') : t('noChildren')));
  };
  search.addEventListener('input', fill);
  fill();
  replace(view, kids.length > 6 ? search : null, list);
}

function ageText(k: ChildView): string {
  const age = ageOn(k.birth_date);
  const g = k.gender === 'male' ? t('male') : k.gender === 'female' ? t('female') : '';
  return [g, age === null ? '' : t('age', { n: age })].filter(Boolean).join(' · ');
}

// ------------------------------------------------------------ one child

async function childPage(c: Ctx, view: HTMLElement, id: string): Promise<void> {
  const k = await c.s.child(id);
  if (!k || k.status !== 'active') {
    c.setTitle(t('child'), true);
    replace(view, h('p', { class: 'empty' }, t('notFound')));
    return;
  }
  c.setTitle(k.name, true);
  const [visits, plan] = await Promise.all([c.s.visits({ childId: id }), c.s.planItems(id)]);
  const row = (key: Parameters<typeof t>[0], value: Node | string | null | undefined) =>
    value ? [h('dt', {}, t(key)), h('dd', {}, value)] : null;
  const phone = k.guardian_phone
    ? h('a', { href: `tel:${k.guardian_phone.replace(/[^\d+]/g, '')}`, class: 'tel' }, k.guardian_phone)
    : null;
  const guardian = [k.guardian_name, k.guardian_relation ? `（${textOrLabel('rel_', k.guardian_relation)}）` : ''].filter(Boolean).join('');
  const interval = k.visit_interval_days && k.visit_interval_days > 0 ? t('intervalValue', { n: k.visit_interval_days }) : null;
  replace(
    view,
    h(
      'section',
      { class: 'panel' },
      h(
        'div',
        { class: 'card-row' },
        h('strong', { class: 'name big' }, k.name),
        h('span', { class: 'muted' }, ageText(k)),
        h('span', { class: 'spacer' }),
        k.urgent ? urgentBadge() : null,
        dueBadge(k),
      ),
      h(
        'dl',
        { class: 'facts' },
        row('category', label('cat_', k.category, 'cat_other')),
        row('birthDate', showDayWithYear(k.birth_date)),
        row('guardian', guardian),
        row('guardianPhone', phone),
        row('address', k.address),
        row('school', k.school),
        row('healthNotes', k.health_notes),
        row('disabilityNotes', k.disability_notes),
        row('benefit', k.benefit_standard_cny !== null ? t('benefitValue', { n: k.benefit_standard_cny }) : null),
        row('interval', interval),
        row('nextDue', k.due.due_date ? showDayWithYear(k.due.due_date) : null),
      ),
    ),
    h('a', { class: 'btn primary block', href: `#/visit/new/${k.id}`, id: 'record-visit' }, `＋ ${t('recordVisit')}`),
    h('h2', {}, t('planItems')),
    plan.length
      ? h(
          'ul',
          { class: 'cards', id: 'plan' },
          plan.map((p) =>
            h(
              'li',
              { class: 'card' },
              h('div', { class: 'card-row' }, h('strong', {}, label('area_', p.area, 'cat_other')), h('span', { class: 'spacer' }), h('span', { class: 'badge muted' }, label('plan_', p.status, 'plan_open'))),
              h('p', { class: 'body' }, p.description),
              p.owner || p.due_date
                ? h('p', { class: 'muted small' }, [p.owner ? t('planOwner', { o: p.owner }) : '', p.due_date ? t('planDue', { d: showDayWithYear(p.due_date) }) : ''].filter(Boolean).join(' · '))
                : null,
            ),
          ),
        )
      : h('p', { class: 'empty' }, t('noPlanItems')),
    h('h2', {}, t('history')),
    visitList(visits, null),
  );
}

export function visitList(visits: VisitView[], names: Map<string, string> | null): HTMLElement {
  if (!visits.length) return h('p', { class: 'empty' }, t('noVisits'));
  return h(
    'ul',
    { class: 'cards visits' },
    visits.map((v) =>
      h(
        'li',
        {},
        h(
          'a',
          { class: 'card visit-card', href: `#/visit/${v.id}`, 'data-visit': v.id, 'data-state': v.localState },
          h(
            'div',
            { class: 'card-row' },
            h('strong', {}, names ? (names.get(v.child_id) ?? '—') : showInstant(v.visited_at)),
            h('span', { class: 'spacer' }),
            v.urgent ? urgentBadge() : null,
            stateBadge(v),
          ),
          h(
            'div',
            { class: 'card-row muted small' },
            h('span', {}, label('kind_', v.kind, 'kind_other')),
            names ? h('span', {}, showInstant(v.visited_at)) : null,
            v.photos.length ? h('span', {}, t('photoCount', { n: v.photos.length })) : null,
          ),
          v.localState === 'returned' && v.review_comment ? h('p', { class: 'comment small' }, v.review_comment) : null,
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------ lists

type Tab = 'drafts' | 'waiting' | 'synced' | 'returned';
const TABS: { tab: Tab; key: 'tabDrafts' | 'tabWaiting' | 'tabSynced' | 'tabReturned'; states: VisitView['localState'][] }[] = [
  { tab: 'drafts', key: 'tabDrafts', states: ['draft'] },
  { tab: 'waiting', key: 'tabWaiting', states: ['waiting'] },
  { tab: 'synced', key: 'tabSynced', states: ['synced', 'approved'] },
  { tab: 'returned', key: 'tabReturned', states: ['returned'] },
];

async function childNames(s: Seedling, visits: VisitView[]): Promise<Map<string, string>> {
  const names = new Map((await s.children()).map((k) => [k.id, k.name] as const));
  for (const v of visits) {
    if (!names.has(v.child_id)) {
      const k = await s.child(v.child_id);
      if (k) names.set(k.id, k.name);
    }
  }
  return names;
}

async function visitLists(c: Ctx, view: HTMLElement, tab: Tab): Promise<void> {
  c.setTitle(t('lists'), false);
  const me = c.s.user()?.id;
  const all = (await c.s.visits()).filter((v) => v.author_id === me);
  const names = await childNames(c.s, all);
  const current = TABS.find((x) => x.tab === tab) ?? TABS[0]!;
  const tabs = h(
    'div',
    { class: 'segments', role: 'tablist' },
    TABS.map((x) => {
      const n = all.filter((v) => x.states.includes(v.localState)).length;
      return h(
        'a',
        { href: `#/visits/${x.tab}`, role: 'tab', class: 'segment', 'aria-selected': String(x === current), id: `tab-${x.tab}` },
        h('span', {}, t(x.key)),
        h('span', { class: 'count' }, String(n)),
      );
    }),
  );
  const shown = all.filter((v) => current.states.includes(v.localState));
  replace(view, tabs, shown.length ? visitList(shown, names) : h('p', { class: 'empty' }, t('emptyList')));
}

// ------------------------------------------------------------ tasks

async function tasksPage(c: Ctx, view: HTMLElement): Promise<void> {
  c.setTitle(t('tasks'), false);
  const tasks = await c.s.tasks();
  if (!tasks.length) {
    replace(view, h('p', { class: 'empty' }, t('noTasks')));
    return;
  }
  replace(
    view,
    h(
      'ul',
      { class: 'cards', id: 'tasks' },
      tasks.map((task) =>
        h(
          'li',
          {},
          h(
            'a',
            { class: 'card task-card', href: `#/visit/${task.visitId}`, 'data-visit': task.visitId },
            h(
              'div',
              { class: 'card-row' },
              h('strong', {}, task.childName || '—'),
              h('span', { class: 'spacer' }),
              h('span', { class: 'badge bad' }, t('state_returned')),
            ),
            h('p', { class: 'muted small' }, t('supervisorComment'), task.returnedAt ? ` · ${t('returnedOn', { d: showInstant(task.returnedAt) })}` : ''),
            h('p', { class: 'comment' }, task.comment),
            h('span', { class: 'btn secondary small' }, t('amend')),
          ),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------ me

async function mePage(c: Ctx, view: HTMLElement): Promise<void> {
  c.setTitle(t('me'), false);
  const u = c.s.user();
  replace(
    view,
    h(
      'section',
      { class: 'panel' },
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, t('account')),
        h('dd', {}, u ? `${u.display_name}（${u.username}）` : ''),
        h('dt', {}, t('village')),
        h('dd', {}, u?.org_unit.name ?? ''),
      ),
    ),
    h('h2', {}, t('language')),
    h(
      'div',
      { class: 'row' },
      h('button', { class: 'btn secondary', type: 'button', id: 'lang-zh', onclick: () => c.switchLang('zh') }, '中文'),
      h('button', { class: 'btn secondary', type: 'button', id: 'lang-en', onclick: () => c.switchLang('en') }, 'English'),
    ),
    h('h2', {}, t('about')),
    h('p', {}, t('aboutText')),
    h('button', { class: 'btn secondary block', type: 'button', id: 'lock-now', onclick: () => c.lockNow() }, t('lockNow')),
    h('button', { class: 'btn danger block', type: 'button', id: 'sign-out', onclick: () => void c.signOut() }, t('signOut')),
  );
}
