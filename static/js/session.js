// Who is signed in: set by the router after /auth/me, cleared on sign-out or
// a 401. Views read it; only app.js writes it.
export const session = { me: null };
