/**
 * What the app sees: records as the director's phone holds them (the
 * server's copy with pending edits on top) turned into `ChildView`,
 * `VisitView`, `PlanItemView` and `Task`, with the due rule and the urgent
 * marks. Pure functions over what the store loaded.
 */

import { dayIn, dueStatus, type VisitIntervals } from './due.ts';
import { parseHlc, tryParseHlc } from './hlc.ts';
import { applyMutation, changedFields, plainOf, valueObject } from './records.ts';
import type { RecordBody } from './db.ts';
import type {
  ChildView,
  LocalVisitState,
  NeedItem,
  PhotoRef,
  PlanItemView,
  RiskFlagItem,
  Task,
  VisitView,
} from './types.ts';
import type { Json, MutationWire } from './wire.ts';

/** A record as loaded: its decrypted body and its pending mutations, oldest first. */
export interface LoadedRecord {
  key: string;
  entity: 'child' | 'visit' | 'case_plan_item';
  id: string;
  body: RecordBody;
  pending: MutationWire[];
}

/** The record's values as the phone shows them, or null when it is deleted or gone. */
export function localValues(r: LoadedRecord): Record<string, Json> | null {
  const shadow = r.body.shadow;
  const values = plainOf(shadow);
  const shadowVersion = shadow?.version ?? 0;
  let deleted = !!shadow?.tombstone;
  for (const a of r.body.acked) {
    if (a.version > shadowVersion) {
      applyMutation(values, a.mutation);
      if (a.mutation.op === 'delete') deleted = true;
      else if (a.mutation.op === 'create') deleted = false;
    }
  }
  const rejected = !shadow && r.body.acked.length === 0 ? (r.body.rejected ?? null) : null;
  if (rejected) applyMutation(values, rejected);
  for (const m of r.pending) {
    if (m.op === 'delete') deleted = true;
    else applyMutation(values, m);
  }
  if (!shadow && r.body.acked.length === 0 && r.pending.length === 0 && !rejected) return null;
  if (deleted) return null;
  return valueObject(values);
}

/** True when the server has never stored the record (no copy, no answered mutation). */
export function neverStored(r: LoadedRecord): boolean {
  return !r.body.shadow && r.body.acked.length === 0;
}

/** The server version new edits of the record start from. */
export function baseVersion(r: LoadedRecord): number {
  return Math.max(r.body.shadow?.version ?? 0, ...r.body.acked.map((a) => a.version));
}

const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : null);
const num = (v: Json | undefined): number | null => (typeof v === 'number' ? v : null);
const arr = <T>(v: Json | undefined): T[] => (Array.isArray(v) ? (v as unknown as T[]) : []);

export function isUrgentVisit(values: Record<string, Json>): boolean {
  return arr<RiskFlagItem>(values['risk_flags']).some((f) => f.urgent === true);
}

export function localState(values: Record<string, Json>, pending: MutationWire[], refusedCreate = false): LocalVisitState {
  // A visit whose create the server refused waits for the director's correction.
  if (refusedCreate && pending.length === 0) return 'draft';
  const review = str(values['review_status']);
  if (review === 'approved') return 'approved';
  if (review === 'draft' || review === null) return 'draft';
  if (pending.length > 0) return 'waiting';
  if (review === 'returned') return 'returned';
  return 'synced';
}

export function visitView(r: LoadedRecord, values: Record<string, Json>): VisitView {
  const issue = r.body.issue;
  const view: VisitView = {
    id: r.id,
    version: r.body.shadow?.version ?? 0,
    child_id: str(values['child_id']) ?? '',
    author_id: str(values['author_id']) ?? '',
    village_id: str(values['village_id']) ?? '',
    device_id: str(values['device_id']),
    kind: (str(values['kind']) ?? 'home_visit') as VisitView['kind'],
    visited_at: str(values['visited_at']) ?? '',
    location: (values['location'] ?? null) as VisitView['location'],
    observations: (values['observations'] ?? null) as VisitView['observations'],
    follow_up: str(values['follow_up']),
    next_planned_date: str(values['next_planned_date']),
    needs: arr<NeedItem>(values['needs']),
    risk_flags: arr<RiskFlagItem>(values['risk_flags']),
    photos: arr<PhotoRef>(values['photos']),
    review_status: (str(values['review_status']) ?? 'draft') as VisitView['review_status'],
    review_comment: str(values['review_comment']),
    localState: localState(values, r.pending, neverStored(r) && !!r.body.rejected),
    pendingFields: changedFields(r.pending),
    urgent: isUrgentVisit(values),
    flags: r.body.flags ?? [],
  };
  if (issue) view.conflict = issue;
  return view;
}

export function planItemView(r: LoadedRecord, values: Record<string, Json>): PlanItemView {
  return {
    id: r.id,
    version: r.body.shadow?.version ?? 0,
    child_id: str(values['child_id']) ?? '',
    area: str(values['area']) ?? '',
    description: str(values['description']) ?? '',
    status: (str(values['status']) ?? 'open') as PlanItemView['status'],
    owner: str(values['owner']),
    due_date: str(values['due_date']),
  };
}

/**
 * The day a child was added to the register. The sync record does not
 * carry it, so the phone takes the day of the child's oldest field clock
 * (the clock of its creation), in the district's calendar.
 */
export function registeredOn(r: LoadedRecord, timeZone: string): string | null {
  let min: number | null = null;
  for (const f of Object.values(r.body.shadow?.fields ?? {})) {
    const hlc = 'register' in f ? tryParseHlc(f.register.hlc) : null;
    if (hlc && hlc.wallMs > 0 && (min === null || hlc.wallMs < min)) min = hlc.wallMs;
  }
  return min === null ? null : dayIn(min, timeZone);
}

export interface ChildContext {
  /** Live visits of the child, as the phone shows them. */
  visits: VisitView[];
  today: string;
  timeZone: string;
  intervals: VisitIntervals;
}

/** The day of the last visit that counts (not a draft), in the district's calendar. */
export function lastVisitOn(visits: VisitView[], timeZone: string): string | null {
  let best: string | null = null;
  for (const v of visits) {
    if (v.review_status === 'draft') continue;
    const ms = Date.parse(v.visited_at);
    if (!Number.isFinite(ms)) continue;
    const day = dayIn(ms, timeZone);
    if (best === null || day > best) best = day;
  }
  return best;
}

export function childView(r: LoadedRecord, values: Record<string, Json>, cx: ChildContext): ChildView {
  const last = lastVisitOn(cx.visits, cx.timeZone);
  const override = num(values['visit_interval_days']);
  const status = str(values['status']) === 'exited' ? 'exited' : 'active';
  const registered = registeredOn(r, cx.timeZone) ?? cx.today;
  const due = dueStatus(
    {
      category: str(values['category']) ?? '',
      active: status === 'active',
      intervalOverrideDays: override,
      registeredOn: registered,
      lastVisitOn: last,
    },
    cx.today,
    cx.intervals,
  );
  return {
    id: r.id,
    version: r.body.shadow?.version ?? 0,
    name: str(values['name']) ?? '',
    gender: (str(values['gender']) as ChildView['gender']) ?? null,
    birth_date: str(values['birth_date']) ?? '',
    category: str(values['category']) ?? '',
    status,
    exit_reason: str(values['exit_reason']),
    exit_date: str(values['exit_date']),
    village_id: str(values['village_id']) ?? '',
    guardian_name: str(values['guardian_name']),
    guardian_relation: str(values['guardian_relation']),
    guardian_phone: str(values['guardian_phone']),
    address: str(values['address']),
    school: str(values['school']),
    health_notes: str(values['health_notes']),
    disability_notes: str(values['disability_notes']),
    benefit_standard_cny: num(values['benefit_standard_cny']),
    visit_interval_days: override,
    last_visit_on: last,
    due: {
      status: due.state,
      due_date: due.state === 'not_tracked' ? null : due.due,
      ...(due.state === 'upcoming' ? { days_left: due.days_left } : {}),
      ...(due.state === 'overdue' ? { days_overdue: due.days_overdue } : {}),
      never_visited: last === null,
    },
    urgent: cx.visits.some((v) => v.urgent && v.review_status !== 'approved'),
  };
}

/** Urgent first, then most overdue, due today, soonest due, then by name. */
export function compareChildren(a: ChildView, b: ChildView): number {
  if (a.urgent !== b.urgent) return a.urgent ? -1 : 1;
  const rank = (c: ChildView) =>
    c.due.status === 'overdue' ? 0 : c.due.status === 'due_today' ? 1 : c.due.status === 'upcoming' ? 2 : 3;
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (a.due.status === 'overdue' && b.due.status === 'overdue') return (b.due.days_overdue ?? 0) - (a.due.days_overdue ?? 0);
  const ad = a.due.due_date ?? '9999';
  const bd = b.due.due_date ?? '9999';
  if (ad !== bd) return ad < bd ? -1 : 1;
  return a.name.localeCompare(b.name, 'zh-CN');
}

/** `sync_core::tasks::review_tasks`: the author's returned visits, oldest visit first, then by id. */
export function reviewTasks(
  author: string,
  visits: { record: LoadedRecord; view: VisitView }[],
  childName: (id: string) => string,
): Task[] {
  return visits
    .filter(({ view }) => view.author_id === author && view.review_status === 'returned')
    .map(({ record, view }) => {
      const f = record.body.shadow?.fields['review_status'];
      const at = f && 'register' in f ? parseHlc(f.register.hlc).wallMs : null;
      return {
        visitId: view.id,
        childId: view.child_id,
        childName: childName(view.child_id),
        comment: view.review_comment ?? '',
        returnedAt: at ? new Date(at).toISOString() : null,
        visitedAt: view.visited_at,
      };
    })
    .sort((a, b) => (a.visitedAt < b.visitedAt ? -1 : a.visitedAt > b.visitedAt ? 1 : a.visitId < b.visitId ? -1 : 1))
    .map(({ visitedAt: _, ...t }) => t);
}
