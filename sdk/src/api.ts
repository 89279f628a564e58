/**
 * HTTP to the Seedling server: JSON requests with the bearer token, the
 * refresh of a single-use refresh token (before the access token expires
 * and on a 401 `token_expired`), and every error sorted into what the sync
 * loop does with it (SYNC-PROTOCOL.md §5).
 */

import type { ErrorEnvelope, SessionWire } from './wire.ts';

export type ApiErrorKind =
  /** No answer: no signal, DNS, connection dropped. */
  | 'network'
  /** 503 `server_busy` (or any 503/429 with Retry-After): wait as asked. */
  | 'busy'
  /** Other 5xx, 408: try again with back-off. */
  | 'retryable'
  /** 401 that a refresh cannot fix: sign in again. */
  | 'sign_in'
  /** 426: update the app. */
  | 'update'
  /** 403 `device_revoked`: wipe. */
  | 'revoked'
  /** Anything else (4xx, unreadable answer): report, keep the outbox. */
  | 'fatal';

export class ApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The tokens as kept in the store. */
export interface StoredSession {
  accessToken: string;
  accessExpiresAt: number;
  refreshToken: string;
  /** Refresh tokens live 90 days; past this the user must sign in again. */
  refreshExpiresAt: number;
  user: SessionWire['user'];
  /** The district's calendar, as the server said at sign-in or refresh. */
  timeZone?: string;
}

export const REFRESH_TOKEN_LIFETIME_MS = 90 * 24 * 3600 * 1000;
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

export interface ApiDeps {
  baseUrl: string;
  fetch: typeof fetch;
  now: () => number;
  appVersion?: string;
  /** Called with the new session after every refresh, before it is used. */
  saveSession: (s: StoredSession) => Promise<void>;
}

export function sessionFrom(wire: SessionWire, now: number): StoredSession {
  return {
    accessToken: wire.access_token,
    accessExpiresAt: now + wire.expires_in * 1000,
    refreshToken: wire.refresh_token,
    refreshExpiresAt: now + REFRESH_TOKEN_LIFETIME_MS,
    user: wire.user,
    ...(wire.district_time_zone ? { timeZone: wire.district_time_zone } : {}),
  };
}

function retryAfterMs(res: Response): number | null {
  const h = res.headers.get('retry-after');
  if (!h) return null;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(h);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

/** Turns a non-2xx answer into an `ApiError`. */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as Partial<ErrorEnvelope>;
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not the envelope (a proxy's page): keep the status.
  }
  const after = retryAfterMs(res);
  const s = res.status;
  const kind: ApiErrorKind =
    s === 426
      ? 'update'
      : s === 403 && code === 'device_revoked'
        ? 'revoked'
        : s === 401
          ? 'sign_in'
          : s === 503 || s === 429 || s === 507
            ? after !== null || code === 'server_busy'
              ? 'busy'
              : 'retryable'
            : s >= 500 || s === 408
              ? 'retryable'
              : 'fatal';
  return new ApiError(kind, s, code, message, after ?? (code === 'server_busy' ? 1000 : null));
}

const REFRESHABLE = new Set(['token_expired', 'invalid_token', 'missing_token', 'stale_token']);

export class Api {
  session: StoredSession | null = null;
  private refreshing: Promise<void> | null = null;

  constructor(private readonly deps: ApiDeps) {}

  url(path: string): string {
    return `${this.deps.baseUrl.replace(/\/+$/, '')}${path}`;
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...extra };
    if (this.deps.appVersion) h['x-seedling-app-version'] = this.deps.appVersion;
    return h;
  }

  /** A request without a token (sign-in, refresh, logout). */
  async raw(method: string, path: string, body?: unknown): Promise<Response> {
    try {
      return await this.deps.fetch(this.url(path), {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError('network', 0, 'network', e instanceof Error ? e.message : String(e));
    }
  }

  async login(username: string, password: string, deviceId: string, deviceName?: string): Promise<SessionWire> {
    const res = await this.raw('POST', '/api/v1/auth/login', {
      username,
      password,
      device_id: deviceId,
      device_name: deviceName ?? null,
    });
    if (!res.ok) throw await errorOf(res);
    return (await res.json()) as SessionWire;
  }

  /** Spends the refresh token for a new pair; the new one is saved before anything uses it. */
  async refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      const s = this.session;
      if (!s) throw new ApiError('sign_in', 401, 'missing_token', 'not signed in');
      if (this.deps.now() >= s.refreshExpiresAt) {
        throw new ApiError('sign_in', 401, 'refresh_expired', 'the sign-in has expired; sign in again');
      }
      const res = await this.raw('POST', '/api/v1/auth/refresh', { refresh_token: s.refreshToken });
      if (!res.ok) {
        const err = await errorOf(res);
        throw err.status === 401 || err.status === 400 || err.status === 422
          ? new ApiError('sign_in', err.status, err.code, err.message)
          : err;
      }
      const wire = (await res.json()) as SessionWire;
      const next = sessionFrom(wire, this.deps.now());
      this.session = next;
      await this.deps.saveSession(next);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** An authorised request; refreshes ahead of expiry and once on a refreshable 401. */
  async request(
    method: string,
    path: string,
    opts: { json?: unknown; body?: BodyInit; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    if (!this.session) throw new ApiError('sign_in', 401, 'missing_token', 'not signed in');
    if (this.deps.now() >= this.session.accessExpiresAt - REFRESH_MARGIN_MS) await this.refresh();
    const send = async (): Promise<Response> => {
      const extra: Record<string, string> = { ...(opts.headers ?? {}), authorization: `Bearer ${this.session!.accessToken}` };
      if (opts.json !== undefined) extra['content-type'] = 'application/json';
      try {
        return await this.deps.fetch(this.url(path), {
          method,
          headers: this.headers(extra),
          body: opts.json !== undefined ? JSON.stringify(opts.json) : (opts.body ?? null),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      } catch (e) {
        throw new ApiError('network', 0, 'network', e instanceof Error ? e.message : String(e));
      }
    };
    let res = await send();
    if (res.status === 401) {
      const err = await errorOf(res);
      if (!REFRESHABLE.has(err.code)) throw err;
      await this.refresh();
      res = await send();
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body === undefined ? {} : { json: body });
    try {
      return (await res.json()) as T;
    } catch (e) {
      throw new ApiError('fatal', res.status, 'unreadable_answer', e instanceof Error ? e.message : String(e));
    }
  }
}
