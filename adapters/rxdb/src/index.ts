/**
 * Seedling for RxDB apps (docs/ADAPTERS.md): the collection schemas, the
 * replication, the per-field clock hooks, the conflict handler and the
 * scope checksum.
 */

export { Clock, MAX_FORWARD_SKEW_MS } from './clock.ts';
export { childSchema, visitSchema, casePlanItemSchema, conflictSchema, seedlingSchemas, ENTITY_OF } from './schemas.ts';
export { installClockHooks, seedlingConflictHandler, isRecordField } from './hooks.ts';
export { replicateSeedling, seedlingEvents } from './replicate.ts';
export type { SeedlingConnection, SeedlingReplicationOptions, SeedlingCheckpoint, TokenSource } from './replicate.ts';
export { scopeChecksum, recordHash } from './checksum.ts';
export type { ScopeChecksum } from './checksum.ts';
