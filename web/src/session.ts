// Who is logged in: the access token from POST /v1/auth:login, kept in
// sessionStorage (gone with the tab), plus the pincode the shopper last used.
const KEY = "ecom.session";
const PIN = "ecom.pincode";

interface Stored {
  token: string;
  userId: string;
  role: string;
  email: string;
  expires: number; // epoch ms
}

function load(): Stored | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Stored | null;
    return s && s.expires > Date.now() ? s : null;
  } catch {
    return null;
  }
}

type Listener = () => void;
const listeners: Listener[] = [];

export const session = {
  get token(): string | null {
    return load()?.token ?? null;
  },
  get userId(): string | null {
    return load()?.userId ?? null;
  },
  get email(): string | null {
    return load()?.email ?? null;
  },
  get isAdmin(): boolean {
    return load()?.role === "ROLE_ADMIN";
  },
  get loggedIn(): boolean {
    return load() !== null;
  },
  get pincode(): string {
    return localStorage.getItem(PIN) ?? "";
  },
  set pincode(p: string) {
    if (p) localStorage.setItem(PIN, p);
  },
  start(token: string, userId: string, role: string, email: string, expiresInSeconds: number) {
    const expires = Date.now() + Math.max(60, expiresInSeconds - 30) * 1000;
    sessionStorage.setItem(KEY, JSON.stringify({ token, userId, role, email, expires }));
    listeners.forEach((l) => l());
  },
  end() {
    sessionStorage.removeItem(KEY);
    listeners.forEach((l) => l());
  },
  expired() {
    this.end();
  },
  onChange(l: Listener) {
    listeners.push(l);
  },
};
