/**
 * The public shapes of the SDK: what a field app reads and passes in.
 * Field names are the wire (database column) names of SYNC-PROTOCOL.md's
 * rule table, so a view is the record as the server holds it plus a few
 * local facts (`localState`, `pendingFields`, `conflict`).
 */

import type { ConflictWire, FlagWire, Json, RefusalWire } from './wire.ts';

export interface SeedlingOptions {
  /** Origin of the Seedling server, e.g. `https://seedling.example` (no trailing `/api`). */
  baseUrl: string;
  /** IndexedDB database name; one per device profile. Default `seedling`. */
  dbName?: string;
  /** Injected fetch (tests, or a WebView bridge). Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Wall clock in ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Sent as `X-Seedling-App-Version`. */
  appVersion?: string;
  /** Shrinks a photo before it is hashed and stored. Default: browser canvas downscale to JPEG, longest side 1600 px. */
  downscale?: (blob: Blob) => Promise<Blob>;
  /** IndexedDB factory (tests pass fake-indexeddb's). Default `globalThis.indexedDB`. */
  indexedDB?: IDBFactory;
  /** IDBKeyRange constructor matching `indexedDB`. Default `globalThis.IDBKeyRange`. */
  IDBKeyRange?: typeof IDBKeyRange;
  /** Waits between retries; tests inject a fast one. Default `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
  /** PBKDF2 iterations for the PIN key (at least 200 000). Default 310 000. */
  pinIterations?: number;
  /** Pull page size (1–1000). Default 200. */
  pageLimit?: number;
  /** The district's time zone for every calendar day (DESIGN.md §4c). Default `Asia/Shanghai`. */
  timeZone?: string;
}

export type SyncState =
  | 'idle'
  | 'offline'
  | 'syncing'
  | 'error'
  | 'update_required'
  | 'revoked'
  | 'signed_out'
  | 'locked';

export interface SyncStatus {
  state: SyncState;
  /** Mutations waiting in the outbox. */
  pending: number;
  /** Photos not yet completely uploaded. */
  pendingPhotos: number;
  /**
   * The last complete round found the server restored from a backup and
   * recovered: it sent back this phone's own writes the server had lost
   * (`resent` of them), repaired the store and pulled on. Not an error;
   * a supervisor's decisions the restore lost must be redone on the server.
   */
  recovered: boolean;
  /** Writes the last complete round sent again after a restore (0 when it did not recover). */
  resent: number;
  /** Wall ms of the last complete sync round. */
  lastSyncAt: number | null;
  lastError: { code: string; message: string } | null;
}

export interface UserInfo {
  id: string;
  username: string;
  display_name: string;
  role: string;
  org_unit: { id: string; code?: string; name: string };
}

export type ChangeKind = 'status' | 'records' | 'tasks' | 'alert';
export interface ChangeEvent {
  kind: ChangeKind;
  ids?: string[];
}

// ---------------------------------------------------------------- children

/** `sync_core::semantic::DueStatus` state names. */
export type DueState = 'upcoming' | 'due_today' | 'overdue' | 'not_tracked';

export interface DueView {
  status: DueState;
  /** `YYYY-MM-DD` in the district's calendar; null when not tracked. */
  due_date: string | null;
  /** For `upcoming`. */
  days_left?: number;
  /** For `overdue`. */
  days_overdue?: number;
  /** True when the child has no visit that counts (the due date runs from the day it was added). */
  never_visited: boolean;
}

export type ChildCategory =
  | 'institutional_orphan'
  | 'scattered_orphan'
  | 'de_facto_unsupported'
  | 'in_difficulty'
  | 'left_behind'
  | 'migrant'
  | 'low_income_edge'
  | string;

/** A child's register entry as a director receives it (no identity-card number). */
export interface ChildView {
  id: string;
  version: number;
  name: string;
  gender: 'male' | 'female' | null;
  birth_date: string;
  category: ChildCategory;
  status: 'active' | 'exited';
  exit_reason: string | null;
  exit_date: string | null;
  village_id: string;
  guardian_name: string | null;
  guardian_relation: string | null;
  guardian_phone: string | null;
  address: string | null;
  school: string | null;
  health_notes: string | null;
  disability_notes: string | null;
  benefit_standard_cny: number | null;
  visit_interval_days: number | null;
  /** Day (district calendar) of the last visit that counts: not a draft, not deleted. */
  last_visit_on: string | null;
  due: DueView;
  /** An urgent risk flag on a visit not yet approved. */
  urgent: boolean;
}

// ---------------------------------------------------------------- visits

export type VisitKind = 'home_visit' | 'phone_follow_up' | 'school_visit' | 'other';
export type ReviewStatus = 'draft' | 'submitted' | 'returned' | 'approved';
export type LocalVisitState = 'draft' | 'waiting' | 'synced' | 'returned' | 'approved';

/** An item of `needs`: `{"id", "area", …}`. */
export interface NeedItem {
  id: string;
  area: 'living' | 'study' | 'psychology' | string;
  description?: string;
  [key: string]: Json | undefined;
}

/** An item of `risk_flags`: `{"id", "kind", "note", "urgent"}`; `urgent: true` = mandatory reporting. */
export interface RiskFlagItem {
  id: string;
  kind: string;
  note?: string;
  urgent?: boolean;
  [key: string]: Json | undefined;
}

/** An item of `photos`. */
export interface PhotoRef {
  id: string;
  sha256: string;
}

/** `location`: text, or a position as the demo records it. */
export type VisitLocation = string | { lat: number; lon: number; accuracy_m?: number } | null;

/** What the last push said about a visit, when it was not simply applied. */
export interface VisitConflict {
  /** `merged`: applied with losing values or refused fields; `rejected`: nothing applied. */
  status: 'merged' | 'rejected';
  reason?: string;
  message?: string;
  /** A correction to an approved visit kept for the supervisor. */
  amendment?: boolean;
  conflicts: ConflictWire[];
  refusals: RefusalWire[];
  flags: FlagWire[];
  at: number;
}

export interface VisitView {
  id: string;
  /** Server version of the copy the view starts from (0 = never synced). */
  version: number;
  child_id: string;
  author_id: string;
  village_id: string;
  device_id: string | null;
  kind: VisitKind;
  visited_at: string;
  location: VisitLocation;
  observations: Record<string, string> | null;
  follow_up: string | null;
  next_planned_date: string | null;
  needs: NeedItem[];
  risk_flags: RiskFlagItem[];
  photos: PhotoRef[];
  review_status: ReviewStatus;
  review_comment: string | null;
  localState: LocalVisitState;
  /** Fields with local changes the server has not answered yet. */
  pendingFields: string[];
  /** True when a risk flag is urgent. */
  urgent: boolean;
  /** Notices of the last push (`urgent`, `possible_duplicate`, `visit_after_transfer`, …). */
  flags: string[];
  conflict?: VisitConflict;
}

/** What the app passes to `saveVisit`: the editable fields (author-written ones). */
export interface VisitInput {
  /** Absent to create a new visit. */
  id?: string;
  child_id: string;
  kind: VisitKind;
  /** RFC 3339 date-time. */
  visited_at: string;
  location?: VisitLocation;
  observations?: Record<string, string> | null;
  follow_up?: string | null;
  next_planned_date?: string | null;
  needs?: NeedItem[];
  /** Items whose `kind` is in `URGENT_RISK_FLAGS` get `urgent: true`. */
  risk_flags?: RiskFlagItem[];
  photos?: PhotoRef[];
}

// ---------------------------------------------------------------- tasks and plans

/** A visit the supervisor returned for revision. */
export interface Task {
  visitId: string;
  childId: string;
  childName: string;
  comment: string;
  /** ISO instant of the return (the wall time of the review's clock). */
  returnedAt: string | null;
}

/** An open case-plan (一人一策) item. */
export interface PlanItemView {
  id: string;
  version: number;
  child_id: string;
  area: string;
  description: string;
  status: 'open' | 'in_progress' | 'done' | 'cancelled';
  owner: string | null;
  due_date: string | null;
}

/** Thrown by SDK calls for a local refusal (locked store, bad input, approved visit…). */
export class SeedlingError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SeedlingError';
    this.code = code;
  }
}
