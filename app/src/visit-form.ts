/**
 * The visit form: kind, time (now by default), place and position,
 * observations by area (`observations.living/study/health/psychology/
 * safety`), needs items, risk flags with the mandatory-reporting hint for
 * the urgent ones, follow-up, next planned date and photos. Saved as a
 * draft or submitted through `saveVisit`; editable until approved, then
 * shown read-only and locked.
 */

import { RISK_FLAGS, SeedlingError, type NeedItem, type PhotoRef, type RiskFlagItem, type VisitInput, type VisitLocation, type VisitView } from '../../sdk/src/index.ts';
import { h, replace } from './dom.ts';
import { instantOfLocal, localInputValue, showDay } from './format.ts';
import { label, t, type Key } from './i18n.ts';
import type { Ctx } from './screens.ts';
import { stateBadge } from './screens.ts';

const KINDS = ['home_visit', 'phone_follow_up', 'school_visit', 'other'] as const;
const OBS = ['living', 'study', 'health', 'psychology', 'safety'] as const;
const NEED_AREAS = ['living', 'study', 'psychology'] as const;

interface NewPhoto {
  blob: Blob;
  url: string;
}

export async function renderVisitForm(c: Ctx, view: HTMLElement, which: { childId?: string; visitId?: string }): Promise<void> {
  const existing: VisitView | undefined = which.visitId ? await c.s.visit(which.visitId) : undefined;
  const childId = existing?.child_id ?? which.childId ?? '';
  const child = await c.s.child(childId);
  if ((which.visitId && !existing) || !child) {
    c.setTitle(t('viewVisit'), true);
    replace(view, h('p', { class: 'empty' }, t('notFound')));
    return;
  }
  const locked = existing?.review_status === 'approved';
  c.setTitle(`${locked ? t('viewVisit') : existing ? t('editVisit') : t('newVisit')} · ${child.name}`, true);

  // ---------------------------------------------------------- fields
  const kind = h(
    'select',
    { id: 'kind', name: 'kind', required: true },
    KINDS.map((k) => h('option', { value: k }, t(`kind_${k}` as Key))),
  );
  kind.value = existing?.kind ?? 'home_visit';
  const visitedAt = h('input', {
    id: 'visited_at',
    type: 'datetime-local',
    required: true,
    value: localInputValue(existing ? Date.parse(existing.visited_at) : Date.now()),
    max: localInputValue(Date.now() + 60_000),
  });

  let position: VisitLocation = existing && typeof existing.location === 'object' ? existing.location : null;
  const place = h('input', {
    id: 'location',
    placeholder: t('locationPlaceholder'),
    value: typeof existing?.location === 'string' ? existing.location : '',
    maxlength: 200,
  });
  const posLine = h('p', { class: 'muted small', id: 'position' });
  const posBtn = h('button', { type: 'button', class: 'btn secondary small' }, t('useLocation'));
  const clearPos = h('button', { type: 'button', class: 'btn link small' }, t('clearLocation'));
  const showPosition = () => {
    const p = position && typeof position === 'object' ? position : null;
    posLine.textContent = p ? t('located', { n: Math.round(p.accuracy_m ?? 0) }) : '';
    clearPos.hidden = !p;
  };
  posBtn.addEventListener('click', () => {
    if (!navigator.geolocation) return void (posLine.textContent = t('locationFailed'));
    posLine.textContent = t('locating');
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        position = {
          lat: Math.round(pos.coords.latitude * 1e6) / 1e6,
          lon: Math.round(pos.coords.longitude * 1e6) / 1e6,
          accuracy_m: Math.round(pos.coords.accuracy),
        };
        showPosition();
      },
      () => (posLine.textContent = t('locationFailed')),
      { enableHighAccuracy: true, timeout: 20_000, maximumAge: 120_000 },
    );
  });
  clearPos.addEventListener('click', () => {
    position = null;
    showPosition();
  });
  showPosition();

  const obs = new Map(
    OBS.map((k) => [k, h('textarea', { id: `obs-${k}`, name: `obs-${k}`, rows: 3, maxlength: 4000 })] as const),
  );
  for (const [k, el] of obs) el.value = existing?.observations?.[k] ?? '';

  // needs
  let needs: NeedItem[] = (existing?.needs ?? []).map((n) => ({ ...n }));
  const needsBox = h('div', { class: 'needs', id: 'needs' });
  const needArea = h('select', { id: 'need-area', 'aria-label': t('needs') }, NEED_AREAS.map((a) => h('option', { value: a }, t(`area_${a}` as Key))));
  const needText = h('input', { id: 'need-text', placeholder: t('needDescription'), maxlength: 500 });
  const renderNeeds = () =>
    replace(
      needsBox,
      needs.map((n, i) =>
        h(
          'div',
          { class: 'need' },
          h('span', { class: 'badge muted' }, label('area_', n.area, 'cat_other')),
          h('span', { class: 'need-text' }, String(n.description ?? n['note'] ?? '')),
          locked
            ? null
            : h('button', { type: 'button', class: 'btn link small', onclick: () => ((needs = needs.filter((_, j) => j !== i)), renderNeeds()) }, t('removeNeed')),
        ),
      ),
    );
  renderNeeds();
  const addNeed = h(
    'button',
    {
      type: 'button',
      class: 'btn secondary small',
      id: 'add-need',
      onclick: () => {
        const d = needText.value.trim();
        if (!d) return needText.focus();
        needs = [...needs, { id: crypto.randomUUID(), area: needArea.value, description: d }];
        needText.value = '';
        renderNeeds();
      },
    },
    `＋ ${t('addNeed')}`,
  );

  // risk flags
  const prior = new Map((existing?.risk_flags ?? []).map((f) => [f.kind, f] as const));
  const hint = h(
    'div',
    { class: 'mandatory', id: 'mandatory-hint', role: 'alert', hidden: true },
    h('strong', {}, `！${t('mandatoryTitle')}`),
    h('p', {}, t('mandatoryHint')),
  );
  const flagRows = RISK_FLAGS.map((f) => {
    const box = h('input', { type: 'checkbox', name: 'risk', value: f.code, id: `risk-${f.code}`, checked: prior.has(f.code) });
    const note = h('input', { class: 'risk-note', placeholder: t('riskNote'), maxlength: 500, value: String(prior.get(f.code)?.note ?? ''), 'aria-label': t('riskNote') });
    const rowEl = h(
      'div',
      { class: `risk ${f.urgent ? 'is-urgent' : ''}` },
      h('label', { class: 'check', for: `risk-${f.code}` }, box, h('span', {}, label('risk_', f.code, 'risk_unknown'))),
      note,
    );
    const sync = () => {
      note.hidden = !box.checked;
      hint.hidden = !flagRows.some((r) => r.f.urgent && r.box.checked);
    };
    box.addEventListener('change', sync);
    return { f, box, note, rowEl, sync };
  });
  for (const r of flagRows) r.sync();

  // photos
  let keptPhotos: PhotoRef[] = [...(existing?.photos ?? [])];
  const newPhotos: NewPhoto[] = [];
  const photoBox = h('div', { class: 'photos', id: 'photos' });
  const fileInput = h('input', { type: 'file', accept: 'image/*', capture: 'environment', id: 'photo-input', class: 'visually-hidden' });
  const renderPhotos = async () => {
    const tiles: HTMLElement[] = [];
    for (const p of keptPhotos) {
      const url = await c.s.photoUrl(p.sha256).catch(() => null);
      tiles.push(
        photoTile(url, locked ? null : () => ((keptPhotos = keptPhotos.filter((x) => x.id !== p.id)), void renderPhotos())),
      );
    }
    for (const p of newPhotos) {
      tiles.push(
        photoTile(p.url, () => {
          newPhotos.splice(newPhotos.indexOf(p), 1);
          URL.revokeObjectURL(p.url);
          void renderPhotos();
        }),
      );
    }
    replace(photoBox, tiles);
  };
  fileInput.addEventListener('change', () => {
    for (const f of Array.from(fileInput.files ?? [])) newPhotos.push({ blob: f, url: URL.createObjectURL(f) });
    fileInput.value = '';
    void renderPhotos();
  });
  void renderPhotos();

  const followUp = h('textarea', { id: 'follow_up', rows: 3, maxlength: 4000 });
  followUp.value = existing?.follow_up ?? '';
  const nextDate = h('input', { id: 'next_planned_date', type: 'date', value: existing?.next_planned_date ?? '' });
  const err = h('p', { class: 'error', role: 'alert' });

  // ---------------------------------------------------------- save
  const collect = (): VisitInput | null => {
    const at = instantOfLocal(visitedAt.value);
    if (!kind.value || at === null) {
      err.textContent = t('required');
      return null;
    }
    if (at > Date.now() + 5 * 60_000) {
      err.textContent = t('visitInFuture');
      return null;
    }
    const observations: Record<string, string> = { ...(existing?.observations ?? {}) };
    for (const [k, el] of obs) {
      const v = el.value.trim();
      if (v) observations[k] = v;
      else delete observations[k];
    }
    const risk: RiskFlagItem[] = flagRows
      .filter((r) => r.box.checked)
      .map((r) => {
        const before = prior.get(r.f.code);
        const note = r.note.value.trim();
        const item: RiskFlagItem = { ...(before ?? {}), id: before?.id ?? crypto.randomUUID(), kind: r.f.code, urgent: r.f.urgent };
        if (note) item.note = note;
        else delete item.note;
        return item;
      });
    const placeText = place.value.trim();
    return {
      ...(existing ? { id: existing.id } : {}),
      child_id: childId,
      kind: kind.value as VisitInput['kind'],
      visited_at: new Date(at).toISOString(),
      location: position ?? (placeText || null),
      observations: Object.keys(observations).length ? observations : null,
      follow_up: followUp.value.trim() || null,
      next_planned_date: nextDate.value || null,
      needs,
      risk_flags: risk,
      photos: keptPhotos,
    };
  };

  let busy = false;
  const save = async (submit: boolean) => {
    if (busy) return;
    err.textContent = '';
    const input = collect();
    if (!input) return;
    busy = true;
    try {
      const saved = await c.s.saveVisit(input, { submit });
      for (const p of newPhotos.splice(0)) {
        await c.s.addPhoto(saved.id, p.blob);
        URL.revokeObjectURL(p.url);
      }
      c.toast(submit ? t('savedSubmitted') : t('saved'));
      c.go(`#/child/${childId}`, true);
    } catch (e) {
      err.textContent = t('saveFailed', { m: e instanceof SeedlingError ? e.message : String((e as Error)?.message ?? e) });
    } finally {
      busy = false;
    }
  };

  const state = existing?.review_status ?? 'draft';
  const actions = locked
    ? null
    : h(
        'div',
        { class: 'actions' },
        state === 'draft'
          ? [
              h('button', { type: 'button', class: 'btn secondary', id: 'save-draft', onclick: () => void save(false) }, t('saveDraft')),
              h('button', { type: 'button', class: 'btn primary', id: 'submit', onclick: () => void save(true) }, t('submit')),
            ]
          : state === 'returned'
            ? [
                h('button', { type: 'button', class: 'btn secondary', id: 'save-draft', onclick: () => void save(false) }, t('saveChanges')),
                h('button', { type: 'button', class: 'btn primary', id: 'submit', onclick: () => void save(true) }, t('resubmit')),
              ]
            : h('button', { type: 'button', class: 'btn primary', id: 'submit', onclick: () => void save(false) }, t('saveChanges')),
      );
  const del =
    existing && state === 'draft' && existing.version === 0
      ? h(
          'button',
          {
            type: 'button',
            class: 'btn link danger-text block',
            id: 'delete-draft',
            onclick: async () => {
              if (!(await c.confirm([t('deleteDraftConfirm')], t('deleteDraft')))) return;
              try {
                await c.s.deleteDraft(existing.id);
                c.toast(t('deleted'));
                c.go(`#/child/${childId}`, true);
              } catch (e) {
                err.textContent = e instanceof SeedlingError ? e.message : String(e);
              }
            },
          },
          t('deleteDraft'),
        )
      : null;

  const section = (titleKey: Key, ...body: (Node | null)[]) => h('fieldset', { class: 'section' }, h('legend', {}, t(titleKey)), ...body);
  const fl = (key: Key, input: HTMLElement) => h('label', { class: 'field' }, h('span', {}, t(key)), input);

  const notices: (HTMLElement | null)[] = [];
  if (existing) notices.push(h('div', { class: 'card-row' }, stateBadge(existing), h('span', { class: 'muted small' }, showDay(existing.visited_at.slice(0, 10)))));
  if (locked) notices.push(h('p', { class: 'notice locked', id: 'locked-notice' }, t('approvedLocked')));
  if (state === 'returned') {
    notices.push(
      h('div', { class: 'notice returned', id: 'returned-notice' }, h('strong', {}, t('returnedBanner')), h('p', {}, `${t('supervisorComment')}：${existing?.review_comment ?? ''}`)),
    );
  }
  for (const f of existing?.flags ?? []) {
    if (f === 'possible_duplicate' || f === 'visit_after_transfer' || f === 'visit_after_exit') {
      notices.push(h('p', { class: 'notice' }, t(`flag_${f}` as Key)));
    }
  }
  if (existing?.conflict?.status === 'rejected' && !existing.conflict.amendment) {
    notices.push(h('p', { class: 'notice' }, t('rejectedNote', { m: label('reason_', existing.conflict.reason, 'reason_unknown') })));
  } else if (existing?.conflict?.conflicts.length) {
    notices.push(h('p', { class: 'notice' }, t('conflictNote')));
  }

  const form = h(
    'form',
    { class: 'visit-form', id: 'visit-form', onsubmit: (e: Event) => e.preventDefault() },
    h(
      'fieldset',
      { class: 'plain', disabled: locked },
      section('kind', fl('kind', kind), fl('visitedAt', visitedAt), fl('location', place), h('div', { class: 'row' }, posBtn, clearPos), posLine),
      section('observations', ...OBS.map((k) => fl(`obs_${k}` as Key, obs.get(k)!))),
      section('needs', h('p', { class: 'muted small' }, t('needsLead')), needsBox, locked ? null : h('div', { class: 'need-add' }, needArea, needText, addNeed)),
      section(
        'riskFlags',
        h('p', { class: 'group-title urgent-title' }, `！${t('urgentFlags')}`),
        ...flagRows.filter((r) => r.f.urgent).map((r) => r.rowEl),
        hint,
        h('p', { class: 'group-title' }, t('otherFlags')),
        ...flagRows.filter((r) => !r.f.urgent).map((r) => r.rowEl),
      ),
      section('followUp', fl('followUp', followUp), fl('nextPlanned', nextDate)),
      section(
        'photos',
        photoBox,
        locked ? null : h('label', { class: 'btn secondary block', for: 'photo-input', role: 'button' }, `＋ ${t('addPhoto')}`),
        locked ? null : fileInput,
      ),
    ),
    err,
    actions,
    del,
  );
  replace(view, ...notices, form);
}

function photoTile(url: string | null, remove: (() => void) | null): HTMLElement {
  return h(
    'div',
    { class: 'photo' },
    url ? h('img', { src: url, alt: t('photos') }) : h('span', { class: 'muted small' }, t('photoPending')),
    remove ? h('button', { type: 'button', class: 'photo-remove', 'aria-label': t('removePhoto'), onclick: remove }, '×') : null,
  );
}
