// A real OpenID Connect provider for the SSO tests: the certified `oidc-provider` package with its
// development sign-in pages (any password; the login name picks an account from OIDC_ACCOUNTS).
// Environment: OIDC_PROVIDER_MODULE (path to oidc-provider's lib/index.js), OIDC_PORT,
// OIDC_CLIENT (JSON: client_id, client_secret, redirect_uris), OIDC_ACCOUNTS (JSON: login -> claims).
import { pathToFileURL } from "node:url";

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);
const port = Number(process.env.OIDC_PORT);
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS);
const client = JSON.parse(process.env.OIDC_CLIENT);

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      ...client,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
  },
  async findAccount(_ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  cookies: { keys: ["vtp-test-only-cookie-key"] },
  features: { devInteractions: { enabled: true } },
});

provider.listen(port, "127.0.0.1", () => console.log(`oidc provider listening on ${port}`));
