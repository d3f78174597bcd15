import { bytesLabel, imageStateLabel } from '../src/imagestate';

describe('images built from environments', () => {
  it('says how far a build is, and why one failed', () => {
    expect(imageStateLabel({ state: 'queued', message: 'waiting for its turn' })).toBe('waiting for its turn');
    expect(imageStateLabel({ state: 'checking', message: '' })).toBe('checking it starts as a server');
    expect(imageStateLabel({ state: 'failed', message: 'the build ran out of memory (builds.memory)' })).toBe(
      'failed: the build ran out of memory (builds.memory)'
    );
    expect(imageStateLabel({ state: 'ready', message: 'ready: starts as a notebook server' })).toBe('ready');
  });

  it('writes sizes short', () => {
    expect(bytesLabel(0)).toBe('');
    expect(bytesLabel(512)).toBe('512 B');
    expect(bytesLabel(1_234_567)).toBe('1.2 MB');
    expect(bytesLabel(45_000_000)).toBe('45 MB');
  });
});
