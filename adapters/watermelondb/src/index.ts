/**
 * Seedling for WatermelonDB apps (docs/ADAPTERS.md): the table schemas,
 * model classes that keep per-field clocks, `syncSeedling` with its
 * conflict resolver, and the scope checksum.
 */

export { FIELDS, TABLES, ENTITY_OF, seedlingTables, seedlingSchema, isSeedlingTable } from './schema.ts';
export type { ColumnKind, SeedlingTable } from './schema.ts';
export { SeedlingModel, Child, Visit, CasePlanItem, seedlingModels, setupSeedling, clockOf } from './model.ts';
export { syncSeedling, seedlingConflictResolver, SeedlingSyncError } from './sync.ts';
export type { SeedlingSyncOptions, SyncReport, MutationResult, RefusedRow, TokenSource } from './sync.ts';
export { scopeChecksum } from './checksum.ts';
