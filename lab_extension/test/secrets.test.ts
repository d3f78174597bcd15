import { deliveryLabel, envName } from '../src/format';

describe('secrets', () => {
  it('names a variable after the secret', () => {
    expect(envName('db-password')).toBe('DB_PASSWORD');
    expect(envName('2fa')).toBe('_2FA');
  });

  it('says how a secret is delivered', () => {
    expect(deliveryLabel({ env: 'DB' })).toBe('env DB');
    expect(deliveryLabel({ file: 'key.json' })).toBe('file key.json');
    expect(deliveryLabel(null)).toBe('');
  });
});
