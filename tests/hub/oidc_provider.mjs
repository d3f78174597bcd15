// A real OpenID Connect provider for the tests: npm's certified `oidc-provider`, with its
// development login form (any password) and the accounts given in $OIDC_ACCOUNTS (JSON:
// {"login": {"email": ..., "email_verified": true, "groups": [...]}}).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = () => JSON.parse(readFileSync(process.env.OIDC_ACCOUNTS, "utf8")); // re-read: tests change groups

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: [process.env.OIDC_REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic'
    }
  ],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups']
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  findAccount: async (ctx, id) =>
    accounts()[id] && {
      accountId: id,
      claims: async () => ({ sub: id, preferred_username: id, name: id, ...accounts()[id] })
    },
  pkce: { required: () => false },
  cookies: { keys: ['moonhub-tests-only'] },
  features: { devInteractions: { enabled: true } }
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider: ${issuer}`));
