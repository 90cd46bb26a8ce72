// The REST API, as the UI uses it: same-origin fetch with the session cookie,
// JSON in and out, and errors turned into words.

/** Every API path the UI calls, in one place. */
const enc = encodeURIComponent;
export const paths = {
  setup: "/api/cloud/auth/setup",
  login: "/api/cloud/auth/login",
  logout: "/api/cloud/auth/logout",
  me: "/api/cloud/auth/me",
  apiKeys: "/api/cloud/auth/api-keys",
  apiKey: (id) => `/api/cloud/auth/api-keys/${enc(id)}`,
  providers: "/api/cloud/providers",
  provider: "/api/cloud/providers/replicate",
  providerValidate: "/api/cloud/providers/replicate/validate",
  costLimit: "/api/cloud/metrics/cost-limit",
  costEstimate: "/api/cloud/cost-estimate",
  configs: "/api/cloud/configs",
  config: (name) => `/api/cloud/configs/${enc(name)}`,
  publishingStatus: "/api/cloud/publishing/status",
  jobs: "/api/cloud/jobs",
  job: (id) => `/api/cloud/jobs/${enc(id)}`,
  submit: "/api/cloud/jobs/submit?provider=replicate",
  storage: "/api/cloud/storage",
  models: "/api/cloud/models",
  datasets: "/api/cloud/datasets",
  dataset: (name) => `/api/cloud/datasets/${enc(name)}`,
  events: "/api/cloud/events",
  eventsVerify: "/api/cloud/events/verify",
};

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.code = body && body.error;
    this.body = body;
  }
}

/** A sentence for an API error: the server's message plus what to do. */
function describe(status, body) {
  const message = body && (body.message || body.detail);
  if (status === 0) return "The server did not answer. Check that cloudtuner is running.";
  if (message) return message;
  if (status === 401) return "Please sign in again.";
  if (status === 403) return "You do not have permission to do that.";
  if (status === 404) return "Not found (it may have been deleted).";
  return `The server answered ${status}.`;
}

let onUnauthorized = () => {};
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

export async function api(method, path, body, { quiet401 = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, null);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text.slice(0, 300) };
    }
  }
  if (!resp.ok || (data && data.success === false)) {
    if (resp.status === 401 && !quiet401) onUnauthorized();
    throw new ApiError(resp.status, data);
  }
  return data;
}

export const get = (p, o) => api("GET", p, undefined, o);
export const post = (p, b, o) => api("POST", p, b === undefined ? {} : b, o);
export const put = (p, b) => api("PUT", p, b);
export const del = (p) => api("DELETE", p);
export const patch = (p, b) => api("PATCH", p, b);
