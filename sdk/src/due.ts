/**
 * The due-date rule of `sync_core::semantic` (`due_date`, `due_status`),
 * and the one calendar function (DESIGN.md §4c): every calendar day is a
 * day in the district's time zone (`Asia/Shanghai` by default), never an
 * assumed offset.
 */

import type { DueState } from './types.ts';

/** `VisitIntervals::default()`: days per category, fallback 30. */
export const DEFAULT_VISIT_INTERVALS: { byCategory: Record<string, number>; fallbackDays: number } = {
  byCategory: {
    institutional_orphan: 90,
    scattered_orphan: 30,
    de_facto_unsupported: 30,
    in_difficulty: 30,
    left_behind: 90,
    migrant: 90,
    low_income_edge: 30,
  },
  fallbackDays: 30,
};

export type VisitIntervals = typeof DEFAULT_VISIT_INTERVALS;

export const DEFAULT_TIME_ZONE = 'Asia/Shanghai';

export interface DueInput {
  category: string;
  active: boolean;
  intervalOverrideDays: number | null;
  /** `YYYY-MM-DD` */
  registeredOn: string;
  /** `YYYY-MM-DD` */
  lastVisitOn: string | null;
}

export type DueStatus =
  | { state: 'upcoming'; due: string; days_left: number }
  | { state: 'due_today'; due: string }
  | { state: 'overdue'; due: string; days_overdue: number }
  | { state: 'not_tracked' };

export function intervalDays(intervals: VisitIntervals, category: string, overrideDays: number | null): number {
  if (overrideDays !== null && overrideDays > 0) return overrideDays;
  return intervals.byCategory[category] ?? intervals.fallbackDays;
}

const DAY_MS = 86_400_000;

function dayNumber(date: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) throw new Error(`not a date: ${date}`);
  return Math.round(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / DAY_MS);
}

function dateOf(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export function addDays(date: string, days: number): string {
  return dateOf(dayNumber(date) + days);
}

export function daysBetween(from: string, to: string): number {
  return dayNumber(to) - dayNumber(from);
}

export function dueDate(child: DueInput, intervals: VisitIntervals = DEFAULT_VISIT_INTERVALS): string {
  return addDays(child.lastVisitOn ?? child.registeredOn, intervalDays(intervals, child.category, child.intervalOverrideDays));
}

export function dueStatus(child: DueInput, today: string, intervals: VisitIntervals = DEFAULT_VISIT_INTERVALS): DueStatus {
  if (!child.active) return { state: 'not_tracked' };
  const due = dueDate(child, intervals);
  const delta = daysBetween(today, due);
  if (delta === 0) return { state: 'due_today', due };
  if (delta > 0) return { state: 'upcoming', due, days_left: delta };
  return { state: 'overdue', due, days_overdue: -delta };
}

export function dueStateOf(s: DueStatus): DueState {
  return s.state;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar day (`YYYY-MM-DD`) of an instant in `timeZone`. */
export function dayIn(ms: number, timeZone: string = DEFAULT_TIME_ZONE): string {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(timeZone, f);
  }
  const parts = f.formatToParts(new Date(ms));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}
