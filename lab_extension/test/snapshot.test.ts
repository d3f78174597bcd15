import { withoutOutputs } from '../src/snapshot';

describe('withoutOutputs', () => {
  it('empties code cells and keeps everything else', () => {
    const nb = {
      nbformat: 4,
      metadata: { kernelspec: { name: 'python3' } },
      cells: [
        { cell_type: 'code', source: 'x = 1', outputs: [{ output_type: 'stream', text: 'big' }], execution_count: 7, metadata: { tags: ['parameters'] } },
        { cell_type: 'markdown', source: '# hi', attachments: { 'a.png': { 'image/png': 'AAAA' } }, metadata: {} }
      ]
    };
    const out = withoutOutputs(nb);
    expect(out.cells).toEqual([
      { cell_type: 'code', source: 'x = 1', outputs: [], execution_count: null, metadata: { tags: ['parameters'] } },
      nb.cells[1]
    ]);
    expect(out.metadata).toBe(nb.metadata);
    expect(nb.cells[0].outputs).toHaveLength(1);
  });

  it('leaves a notebook without cells as it is', () => {
    expect(withoutOutputs({ nbformat: 4 })).toEqual({ nbformat: 4, cells: [] });
  });
});
