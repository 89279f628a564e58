/**
 * Dates in the district's calendar (Asia/Shanghai, DESIGN.md §4c), shown
 * as "12月3日" (or "3 Dec" in English). No offset is assumed: the wall
 * time of an instant and the instant of a wall time both go through Intl.
 */

import { currentLang, t } from './i18n.ts';

export const TIME_ZONE = 'Asia/Shanghai';

interface Wall {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
}

const partsFmt = new Intl.DateTimeFormat('en-US', {
  timeZone: TIME_ZONE,
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

function wall(ms: number): Wall & { s: number } {
  const p: Record<string, number> = {};
  for (const part of partsFmt.formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return { y: p['year']!, mo: p['month']!, d: p['day']!, h: p['hour']! % 24, mi: p['minute']!, s: p['second']! };
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** `YYYY-MM-DD` of an instant in the district's calendar. */
export function dayOf(ms: number): string {
  const w = wall(ms);
  return `${w.y}-${pad(w.mo)}-${pad(w.d)}`;
}

/** `YYYY-MM-DDTHH:mm` (a datetime-local value) of an instant. */
export function localInputValue(ms: number): string {
  const w = wall(ms);
  return `${w.y}-${pad(w.mo)}-${pad(w.d)}T${pad(w.h)}:${pad(w.mi)}`;
}

/** The instant of a district wall time `YYYY-MM-DDTHH:mm`. */
export function instantOfLocal(value: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
  if (!m) return null;
  const asUtc = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!);
  let guess = asUtc;
  for (let i = 0; i < 3; i++) {
    const w = wall(guess);
    const shown = Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s);
    guess += asUtc - shown;
  }
  return guess;
}

/** "12月3日" from `YYYY-MM-DD` (a calendar day, no zone involved). */
export function showDay(day: string | null | undefined): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(day ?? '');
  if (!m) return '';
  const mo = +m[2]!;
  const d = +m[3]!;
  if (currentLang() === 'en') {
    const names = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    return `${d} ${names[mo - 1]}`;
  }
  return `${mo}月${d}日`;
}

/** "12月3日" with the year when it is not this year. */
export function showDayWithYear(day: string | null | undefined, nowMs = Date.now()): string {
  const m = /^(\d{4})/.exec(day ?? '');
  if (!m) return '';
  const thisYear = dayOf(nowMs).slice(0, 4);
  if (m[1] === thisYear) return showDay(day);
  return currentLang() === 'en' ? `${showDay(day)} ${m[1]}` : `${m[1]}年${showDay(day)}`;
}

/** "12月3日 14:05" of an instant (ISO or ms). */
export function showInstant(at: string | number | null | undefined, nowMs = Date.now()): string {
  if (at === null || at === undefined || at === '') return '';
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(ms)) return '';
  const w = wall(ms);
  return `${showDayWithYear(dayOf(ms), nowMs)} ${pad(w.h)}:${pad(w.mi)}`;
}

/** "刚刚", "5分钟前", "今天 14:05" or "12月3日 14:05". */
export function showAgo(ms: number | null, nowMs = Date.now()): string {
  if (ms === null) return '';
  const diff = nowMs - ms;
  if (diff < 60_000) return t('justNow');
  if (diff < 3_600_000) return t('minutesAgo', { n: Math.floor(diff / 60_000) });
  const w = wall(ms);
  if (dayOf(ms) === dayOf(nowMs)) return `${t('today')} ${pad(w.h)}:${pad(w.mi)}`;
  return showInstant(ms, nowMs);
}

/** Whole years between a birth day and today (district calendar). */
export function ageOn(birth: string | null | undefined, nowMs = Date.now()): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(birth ?? '');
  if (!m) return null;
  const today = dayOf(nowMs);
  const [ty, tm, td] = today.split('-').map(Number) as [number, number, number];
  let age = ty - +m[1]!;
  if (tm < +m[2]! || (tm === +m[2]! && td < +m[3]!)) age--;
  return age;
}
