import { accessLabel, expiresIn, grantee, isVisitor, shareInput } from '../src/sharing';

describe('sharing your server', () => {
  it('asks for a name, and sends one kind of grantee with the access and hours', () => {
    expect(shareInput('user', '  ', 'read', 24)).toBe('Name the user to share with.');
    expect(shareInput('group', '', 'full', 1)).toBe('Name the team to share with.');
    expect(shareInput('user', ' rudi ', 'read', 8)).toEqual({ user: 'rudi', access: 'read', expires_in_hours: 8 });
    expect(shareInput('group', 'crew', 'full', 24)).toEqual({ group: 'crew', access: 'full', expires_in_hours: 24 });
  });

  it('says how long a share has left', () => {
    const now = new Date('2026-12-07T10:00:00Z');
    expect(expiresIn('2026-12-07T10:00:30Z', now)).toBe('now');
    expect(expiresIn('2026-12-07T10:12:00Z', now)).toBe('in 12 minutes');
    expect(expiresIn('2026-12-07T11:00:00Z', now)).toBe('in 1 hour');
    expect(expiresIn('2026-12-08T09:00:00Z', now)).toBe('in 23 hours');
    expect(expiresIn('2026-12-14T10:00:00Z', now)).toBe('in 7 days');
    expect(expiresIn(null, now)).toBe('never (made outside MoonHub)');
  });

  it('names a team as a team', () => {
    expect(grantee({ kind: 'group', name: 'crew' })).toBe('team crew');
    expect(grantee({ kind: 'user', name: 'rudi' })).toBe('rudi');
  });
});

describe('a server shared with you', () => {
  it('is a visitor only where the page user is not the owner', () => {
    expect(isVisitor('tam', 'sol')).toBe(true);
    expect(isVisitor('sol', 'sol')).toBe(false);
    expect(isVisitor('', 'sol')).toBe(false); // not under JupyterHub: nobody to tell apart
  });

  it('says whose server it is, and read only where so', () => {
    expect(accessLabel('read', 'sol')).toBe("sol's server: read only");
    expect(accessLabel('full', 'sol')).toBe("sol's server");
    expect(accessLabel('owner', 'sol')).toBe('');
  });
});
