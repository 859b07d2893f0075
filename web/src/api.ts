// The one door to the public REST API: same-origin `/v1/...` through the edge,
// the caller's token when logged in, AIP-193 errors decoded into ApiError.
import { session } from "./session";

export interface FieldViolation {
  field: string;
  description: string;
}

const CODE_NAMES: Record<number, string> = {
  0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
  13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
};

/** An error answer of the API (or no answer at all: status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly reason: string,
    readonly violations: FieldViolation[],
    readonly requestId: string,
  ) {
    super(message);
  }

  get codeName(): string {
    return CODE_NAMES[this.code] ?? `code ${this.code}`;
  }

  /** The backend for this call is not built or not running (yet). */
  get unavailable(): boolean {
    return (
      this.status === 0 || this.status === 503 || this.status === 501 || this.code === 12 ||
      this.code === 14 || (this.status === 404 && this.message.startsWith("no such route"))
    );
  }
}

type Query = Record<string, string | number | boolean | string[] | undefined | null>;

export interface CallOptions {
  query?: Query;
  body?: unknown;
  idempotencyKey?: string;
}

export function requestId(): string {
  return crypto.randomUUID().replace(/-/g, "");
}

function queryString(query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
    else params.append(key, String(value));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

interface StatusBody {
  code?: number;
  message?: string;
  details?: Array<Record<string, unknown>>;
}

function decodeError(status: number, text: string, requestIdHeader: string): ApiError {
  let body: StatusBody = {};
  try {
    body = JSON.parse(text) as StatusBody;
  } catch {
    body = { message: text.trim() || `HTTP ${status}` };
  }
  const violations: FieldViolation[] = [];
  let reason = "";
  let rid = requestIdHeader;
  for (const d of body.details ?? []) {
    const type = String(d["@type"] ?? "");
    if (type.endsWith("google.rpc.BadRequest")) {
      for (const v of (d.fieldViolations as FieldViolation[] | undefined) ?? []) {
        violations.push({ field: String(v.field ?? ""), description: String(v.description ?? "") });
      }
    } else if (type.endsWith("google.rpc.ErrorInfo")) {
      reason = String(d.reason ?? "");
    } else if (type.endsWith("google.rpc.RequestInfo")) {
      rid = String(d.requestId ?? rid);
    }
  }
  const code = typeof body.code === "number" ? body.code : status >= 500 ? 14 : 2;
  return new ApiError(status, code, body.message || `HTTP ${status}`, reason, violations, rid);
}

/** Call the API; resolves with the JSON body of a 2xx, rejects with ApiError. */
export async function call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
  let resp: Response;
  try {
    resp = await fetch(path + queryString(opts.query), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  } catch (err) {
    throw new ApiError(0, 14, `the shop cannot be reached (${String(err)})`, "", [], "");
  }
  const text = await resp.text();
  if (!resp.ok) {
    const err = decodeError(resp.status, text, resp.headers.get("x-request-id") ?? "");
    if (resp.status === 401 && token) session.expired();
    throw err;
  }
  return (text ? JSON.parse(text) : {}) as T;
}

export const get = <T>(path: string, query?: Query) => call<T>("GET", path, { query });
export const post = <T>(path: string, body: unknown, idempotencyKey?: string) =>
  call<T>("POST", path, { body, idempotencyKey });
export const put = <T>(path: string, body: unknown) => call<T>("PUT", path, { body });
export const del = <T>(path: string, query?: Query) => call<T>("DELETE", path, { query });

/** Encode one path segment taken from user input or the API. */
export const seg = (s: string) => encodeURIComponent(s);
