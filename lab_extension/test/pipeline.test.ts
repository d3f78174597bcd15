import { taskName } from '../src/pipelinepart';
import { levels } from '../src/rungraph';

describe('pipelines in the lab', () => {
  it('names a task after its notebook', () => {
    expect(taskName('reports/Train Model.ipynb')).toBe('train-model');
    expect(taskName('___.ipynb')).toBe('task');
    expect(taskName('a-very-long-notebook-name-indeed.ipynb')).toBe('a-very-long-notebook');
  });

  it('puts each task right of every task it depends on', () => {
    const found = levels([
      { name: 'prepare', depends_on: [] },
      { name: 'train', depends_on: ['prepare'] },
      { name: 'report', depends_on: ['train', 'prepare'] },
      { name: 'cleanup', depends_on: ['train'] }
    ]);
    expect(Object.fromEntries(found)).toEqual({ prepare: 0, train: 1, report: 2, cleanup: 2 });
    // a loop (never saved) still ends
    expect(levels([{ name: 'a', depends_on: ['b'] }, { name: 'b', depends_on: ['a'] }]).size).toBe(2);
  });
});
