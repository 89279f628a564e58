/**
 * `@seedling/sdk`: the offline-first sync SDK of Seedling's field app.
 *
 * ```ts
 * import { Seedling } from '@seedling/sdk';
 * const s = await Seedling.open({ baseUrl: location.origin });
 * await s.signIn('director-001', 'seedling-demo');
 * await s.setPin('135790');
 * await s.sync();
 * const kids = await s.children();
 * ```
 *
 * See README.md for the store, the outbox rule, the sync loop, the lock and
 * what each status means.
 */

export { Seedling } from './seedling.ts';
export type {
  ChangeEvent,
  ChangeKind,
  ChildCategory,
  ChildView,
  DueState,
  DueView,
  LocalVisitState,
  NeedItem,
  PhotoRef,
  PlanItemView,
  ReviewStatus,
  RiskFlagItem,
  SeedlingOptions,
  SyncState,
  SyncStatus,
  Task,
  UserInfo,
  VisitConflict,
  VisitInput,
  VisitKind,
  VisitLocation,
  VisitView,
} from './types.ts';
export { SeedlingError } from './types.ts';
export {
  CATEGORY_LABELS,
  DUE_STATE_LABELS,
  LOCAL_VISIT_STATE_LABELS,
  MANDATORY_REPORTING_HINT,
  NEED_AREA_LABELS,
  RISK_FLAGS,
  SYNC_STATE_LABELS,
  URGENT_RISK_FLAGS,
  VISIT_KIND_LABELS,
  isUrgentRiskFlag,
} from './labels.ts';
export { HlcClock, compareHlc, formatHlc, parseHlc } from './hlc.ts';
export type { Hlc } from './hlc.ts';
export { ScopeChecksum, fnv1a64, recordHash } from './checksum.ts';
export { DEFAULT_VISIT_INTERVALS, dayIn, dueDate, dueStatus } from './due.ts';
export type { DueInput, DueStatus } from './due.ts';
export { lostWrites, recordOfCompact } from './records.ts';
export type { LostWrite } from './records.ts';
export type { RecoveryReport, RepairReport } from './sync.ts';
export type { LiveState } from './events.ts';
export { PROTOCOL_VERSION } from './wire.ts';
export type * as Wire from './wire.ts';
