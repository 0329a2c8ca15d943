// Calls to OET's REST API: JSON in and out, the documented error body turned into one
// readable message, and the bearer token asked for (and kept for the tab) when the server wants one.

const TOKEN_KEY = "oet.api_token";

// Relative to the page, so the console also works behind a path prefix.
export const API_ROOT = new URL("api/v1.0/", document.baseURI);

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let askForToken = async () => null;

// `ask(reason)` resolves to the token the operator typed, or null if they gave up.
export function whenTokenNeeded(ask) {
  askForToken = ask;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authorised(headers) {
  const given = token();
  return given ? { ...headers, Authorization: `Bearer ${given}` } : headers;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not the documented body (a proxy's page, say): fall back to the status line
  }
  const title = body?.error ?? `${response.status} ${response.statusText}`.trim();
  const detail = body?.Message ?? body?.message ?? body?.detail;
  const text = typeof detail === "string" && detail ? `${title}: ${detail}` : title;
  return new ApiError(response.status, body?.type ?? "", text);
}

// After a 401: ask the operator for a token and keep it. Resolves to null when one was given
// (try again), or to the refusal as an ApiError when the operator gave up.
export async function tokenRefused(response) {
  const refused = await errorOf(response);
  const given = await askForToken(refused.message);
  if (!given) return refused;
  setToken(given);
  return null;
}

// One API call; resolves to the answer's JSON or rejects with an ApiError.
export async function call(method, path, body) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(new URL(path, API_ROOT), {
        method,
        headers: authorised(headers),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, "Unreachable", `The OET server did not answer: ${error.message}`);
    }
    if (response.status === 401) {
      const refused = await tokenRefused(response);
      if (refused) throw refused;
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }
}
