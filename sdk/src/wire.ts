/**
 * The wire shapes of the Seedling HTTP API that the SDK sends and reads,
 * written once. They follow `sync_core::protocol` and the server's
 * `/openapi.json`; `test/openapi.test.ts` checks every property named here
 * against the live document of a real server.
 *
 * Keys of the `WIRE_SCHEMAS` table at the end name the OpenAPI component
 * each type corresponds to, so the check needs no second copy of the shapes.
 */

/** Protocol version this SDK speaks (`sync_core::protocol::PROTOCOL_VERSION`). */
export const PROTOCOL_VERSION = 1;

/** The kinds of record that sync. */
export type Entity = 'child' | 'visit' | 'case_plan_item';
export const ENTITIES: readonly Entity[] = ['child', 'visit', 'case_plan_item'];

/** An HLC in its text form, `WWWWWWWWWWWWWWW-CCCCCCCC-NNNN…` (see `hlc.ts`). */
export type HlcText = string;

/** JSON values as they travel. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

// ---------------------------------------------------------------- auth

/** `POST /api/v1/auth/login` body (`LoginRequest`). */
export interface LoginRequest {
  username: string;
  password: string;
  device_id: string;
  device_name?: string | null;
}

/** `POST /api/v1/auth/refresh` and `/logout` body (`RefreshRequest`). */
export interface RefreshRequest {
  refresh_token: string;
}

/** `OrgUnitView` as embedded in a user. */
export interface OrgUnitWire {
  id: string;
  code?: string | null;
  name: string;
  kind?: string;
  parent_id?: string | null;
}

/** `UserView`. */
export interface UserWire {
  id: string;
  username: string;
  display_name: string;
  role: string;
  active: boolean;
  org_unit: OrgUnitWire;
}

/** The answer to sign-in and refresh (`Session`). */
export interface SessionWire {
  access_token: string;
  refresh_token: string;
  /** Seconds until `access_token` expires. */
  expires_in: number;
  token_type: string;
  user: UserWire;
  /** Base64 of 32 bytes; only on a password sign-in, absent on older servers. */
  device_key?: string | null;
  /** The district's calendar (IANA zone); absent on older servers. */
  district_time_zone?: string;
}

// ---------------------------------------------------------------- errors

/** `{"error": {"code", "message", "details"?}}` (`ErrorEnvelope`), every error answer's body. */
export interface ErrorEnvelope {
  error: { code: string; message: string; details?: Json };
}

// ---------------------------------------------------------------- records

/** A last-writer-wins register. */
export interface RegisterWire {
  value: Json;
  hlc: HlcText;
  version: number;
}

/** One item of an add-wins set. */
export interface ItemWire {
  value: JsonObject;
  hlc: HlcText;
  version: number;
}

/** The state of one field: `{"register": …}` or `{"items": {id: …}}`. */
export type FieldWire = { register: RegisterWire } | { items: Record<string, ItemWire> };

/** A record's deletion marker. */
export interface TombstoneWire {
  hlc: HlcText;
  version: number;
}

/** A whole record as pulled (`sync_core::record::Record`). */
export interface RecordWire {
  entity: Entity;
  id: string;
  version: number;
  fields: Record<string, FieldWire>;
  tombstone?: TombstoneWire | null;
}

/** The clock and server version of a write: `[clock, version]`. */
export type StampWire = [HlcText, number];

/**
 * A record in the compact encoding of a pull page
 * (`sync_core::protocol::CompactRecord`): `clock` is the stamp of every
 * field and set item not named in `clocks`; registers under `values`, sets
 * as arrays of their items under `sets`. `recordOfCompact` rebuilds the
 * {@link RecordWire}.
 */
export interface CompactRecordWire {
  entity: Entity;
  id: string;
  version: number;
  clock?: StampWire;
  values?: Record<string, Json>;
  sets?: Record<string, JsonObject[]>;
  /** A register's stamp, or a set's stamps by item id, where they differ from `clock`. */
  clocks?: Record<string, StampWire | Record<string, StampWire>>;
  tombstone?: TombstoneWire | null;
}

// ---------------------------------------------------------------- push

export type Op = 'create' | 'update' | 'delete';

/** A register write `{"hlc","value"}` or a set write `{"hlc","add","remove"}`. */
export type FieldChangeWire =
  | { hlc: HlcText; value: Json }
  | { hlc: HlcText; add: JsonObject[]; remove: string[] };

/** One change a device made (`sync_core::protocol::Mutation`). */
export interface MutationWire {
  mutation_id: string;
  entity: Entity;
  record_id: string;
  op: Op;
  base_version: number;
  hlc: HlcText;
  fields?: Record<string, FieldChangeWire>;
}

/** Body of `POST /api/v1/sync/push` (`PushRequest`). */
export interface PushRequest {
  protocol_version: number;
  device_id: string;
  device_hlc: HlcText;
  mutations: MutationWire[];
  /**
   * The phone's pull cursor, when it has one: a push with a cursor made
   * before the server was restored is answered 409 `server_restored` and
   * applies nothing.
   */
  cursor?: string;
}

export interface SideWire {
  value?: Json;
  hlc: HlcText;
}

export interface ConflictWire {
  field?: string;
  item_id?: string;
  kind: string;
  rule?: string;
  server: SideWire;
  client: SideWire;
  winner: 'server' | 'client';
}

export interface RefusalWire {
  field: string;
  reason: string;
  message: string;
  value?: Json;
}

export interface FlagWire {
  flag: string;
  other_visit_id?: string;
}

/** One result of a push (`MutationResult`, tagged by `status`). */
export type MutationResultWire =
  | { status: 'applied'; mutation_id: string; record_id: string; version: number; flags?: FlagWire[] }
  | {
      status: 'merged';
      mutation_id: string;
      record_id: string;
      version: number;
      conflicts?: ConflictWire[];
      refusals?: RefusalWire[];
      flags?: FlagWire[];
    }
  | {
      status: 'rejected';
      mutation_id: string;
      record_id: string;
      reason: string;
      message: string;
      refusals?: RefusalWire[];
      amendment: boolean;
    };

/** Answer to a push (`PushResponse`). */
export interface PushResponse {
  protocol_version: number;
  server_hlc: HlcText;
  results: MutationResultWire[];
}

// ---------------------------------------------------------------- pull

export interface PurgeWire {
  entity: Entity;
  record_id: string;
  reason: 'left_scope' | 'deleted';
}

export interface ScopeChecksumWire {
  count: number;
  /** 16 lowercase hex digits. */
  sum: string;
}

/** Answer to `GET /api/v1/sync/pull` (`PullResponse`). */
export interface PullResponse {
  protocol_version: number;
  server_hlc: HlcText;
  changes: RecordWire[];
  purges?: PurgeWire[];
  next_cursor: string;
  has_more: boolean;
  scope_checksum: ScopeChecksumWire;
}

/** Answer to `GET /api/v1/sync/pull?encoding=compact` (`CompactPullResponse`): the checksum on the last page only. */
export interface CompactPullResponse {
  protocol_version: number;
  encoding: 'compact';
  server_hlc: HlcText;
  changes: CompactRecordWire[];
  purges?: PurgeWire[];
  next_cursor: string;
  has_more: boolean;
  scope_checksum?: ScopeChecksumWire;
}

// ---------------------------------------------------------------- targeted repair

/** One record of the scope, `[entity, id, version]`. */
export type ManifestEntryWire = [Entity, string, number];

/** `GET /api/v1/sync/manifest` (`ManifestResponse`): the scope's records in pages, ordered by entity then id. */
export interface ManifestResponse {
  protocol_version: number;
  entries: ManifestEntryWire[];
  next_after?: string | null;
  scope_checksum: ScopeChecksumWire;
  /**
   * A pull cursor at the change log's head when this page was read: after
   * a restore the phone pulls on from the first page's. Absent from older
   * servers.
   */
  cursor?: string | null;
}

export interface RecordRefWire {
  entity: Entity;
  id: string;
}

/** `POST /api/v1/sync/fetch` body (`FetchRequest`), at most 500 records. */
export interface FetchRequest {
  protocol_version: number;
  records: RecordRefWire[];
}

/** Its answer (`FetchResponse`): the records whole, as a pull sends them, and those not in scope. */
export interface FetchResponse {
  protocol_version: number;
  server_hlc: HlcText;
  changes: RecordWire[];
  missing?: RecordRefWire[];
}

// ---------------------------------------------------------------- attachments

/** `GET /api/v1/attachments/{sha256}/status` and the answer to a chunk (`AttachmentStatus`). */
export interface AttachmentStatusWire {
  sha256: string;
  status: 'pending' | 'complete' | string;
  received_bytes: number;
  size_bytes?: number | null;
  content_type?: string | null;
}

// ---------------------------------------------------------------- visit rules

/** `GET /api/v1/visit-rules` (`VisitRulesView`): the district's intervals, in `VisitIntervals`' shape. */
export interface VisitRulesWire {
  district_id: string;
  intervals: { by_category: Record<string, number>; fallback_days: number };
}

// ---------------------------------------------------------------- the check table

/**
 * The properties each wire type sends or expects, by OpenAPI component and
 * the JSON type the SDK relies on. `test/openapi.test.ts` asserts each one
 * exists in the live `/openapi.json` with a compatible type.
 */
export const WIRE_SCHEMAS: Record<string, Record<string, 'string' | 'integer' | 'boolean' | 'array' | 'object'>> = {
  LoginRequest: { username: 'string', password: 'string', device_id: 'string', device_name: 'string' },
  RefreshRequest: { refresh_token: 'string' },
  Session: {
    access_token: 'string',
    refresh_token: 'string',
    expires_in: 'integer',
    token_type: 'string',
    user: 'object',
    device_key: 'string',
    district_time_zone: 'string',
  },
  UserView: { id: 'string', username: 'string', display_name: 'string', role: 'string', active: 'boolean', org_unit: 'object' },
  OrgUnitView: { id: 'string', code: 'string', name: 'string' },
  ErrorEnvelope: { error: 'object' },
  PushRequest: { protocol_version: 'integer', device_id: 'string', device_hlc: 'string', mutations: 'array', cursor: 'string' },
  PushResponse: { protocol_version: 'integer', server_hlc: 'string', results: 'array' },
  PullResponse: {
    protocol_version: 'integer',
    server_hlc: 'string',
    changes: 'array',
    purges: 'array',
    next_cursor: 'string',
    has_more: 'boolean',
    scope_checksum: 'object',
  },
  CompactPullResponse: {
    protocol_version: 'integer',
    encoding: 'string',
    server_hlc: 'string',
    changes: 'array',
    purges: 'array',
    next_cursor: 'string',
    has_more: 'boolean',
    scope_checksum: 'object',
  },
  VisitRulesView: { district_id: 'string', intervals: 'object' },
  ManifestResponse: { protocol_version: 'integer', entries: 'array', next_after: 'string', scope_checksum: 'object', cursor: 'string' },
  FetchRequest: { protocol_version: 'integer', records: 'array' },
  FetchResponse: { protocol_version: 'integer', server_hlc: 'string', changes: 'array', missing: 'array' },
  AttachmentStatus: { sha256: 'string', status: 'string', received_bytes: 'integer', size_bytes: 'integer', content_type: 'string' },
};

/** The properties of each push result variant, by `status`. */
export const WIRE_RESULT_VARIANTS: Record<string, Record<string, 'string' | 'integer' | 'boolean' | 'array'>> = {
  applied: { status: 'string', mutation_id: 'string', record_id: 'string', version: 'integer', flags: 'array' },
  merged: {
    status: 'string',
    mutation_id: 'string',
    record_id: 'string',
    version: 'integer',
    conflicts: 'array',
    refusals: 'array',
    flags: 'array',
  },
  rejected: {
    status: 'string',
    mutation_id: 'string',
    record_id: 'string',
    reason: 'string',
    message: 'string',
    refusals: 'array',
    amendment: 'boolean',
  },
};
