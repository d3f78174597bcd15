import { overrides, parametersCell, parseParameters, pythonLiteral, stripComment, toPython, typedValue } from '../src/parameters';

const NB = {
  cells: [
    { cell_type: 'markdown', source: 'Tagged but markdown', metadata: { tags: ['parameters'] } },
    { cell_type: 'code', source: 'import os', metadata: {} },
    {
      cell_type: 'code',
      source: [
        'learning_rate = 0.01  # step size\n',
        'epochs: int = 10\n',
        'model = "resnet50"\n',
        "tags = ['a', 'b#c']\n",
        'data_dir = os.environ["DATA"]\n',
        'if epochs > 5:\n',
        '    fast = True\n',
        'check == 3\n'
      ],
      metadata: { tags: ['parameters', 'other'] }
    }
  ]
};

describe('the parameters cell', () => {
  it('is the first code cell tagged "parameters"', () => {
    expect(parametersCell(NB)).toContain('learning_rate');
    expect(parametersCell({ cells: [] })).toBeNull();
    expect(parametersCell(undefined)).toBeNull();
  });

  it('gives its top-level assignments, literal or not', () => {
    const params = parseParameters(parametersCell(NB)!);
    expect(params).toEqual([
      { name: 'learning_rate', text: '0.01', literal: true },
      { name: 'epochs', text: '10', literal: true },
      { name: 'model', text: '"resnet50"', literal: true },
      { name: 'tags', text: "['a', 'b#c']", literal: true },
      { name: 'data_dir', text: 'os.environ["DATA"]', literal: false }
    ]);
  });

  it('strips comments but not a # inside a string', () => {
    expect(stripComment("x = 'a#b'  # note")).toBe("x = 'a#b'  ");
  });
});

describe('Python literals', () => {
  it.each([
    ['3', 3],
    ['-2.5e-3', -0.0025],
    ['1_000', 1000],
    ['True', true],
    ['None', null],
    ["'it\\'s'", "it's"],
    ['"""multi"""', 'multi'],
    ["[1, 'two', (3, 4), {'k': False}]", [1, 'two', [3, 4], { k: false }]],
    ['{}', {}]
  ])('%s -> %j', (text, value) => {
    expect(pythonLiteral(text)).toEqual({ ok: true, value });
  });

  it.each(['os.getcwd()', 'x', '[1, 2', "'open", '1 2', '-'])('%s is not a literal', text => {
    expect(pythonLiteral(text).ok).toBe(false);
  });

  it('types what people enter', () => {
    expect(typedValue('0.5')).toBe(0.5);
    expect(typedValue('false')).toBe(false); // JSON spelling
    expect(typedValue('resnet101')).toBe('resnet101');
    expect(typedValue('[1, 2]')).toEqual([1, 2]);
  });

  it('shows stored values the Python way', () => {
    expect(toPython({ a: [1, true, null], b: 'x' })).toBe('{"a": [1, True, None], "b": "x"}');
  });
});

describe('overrides', () => {
  it('sends only values that differ from the notebook', () => {
    const detected = parseParameters('lr = 0.01\nepochs = 10\nmodel = "resnet50"\n');
    const got = overrides(detected, { lr: '0.01', epochs: '20', model: 'vit', unknown: '1' });
    expect(got).toEqual({ epochs: 20, model: 'vit' });
  });

  it('leaves a cleared value at the notebook default', () => {
    const detected = parseParameters('lr = 0.01\n');
    expect(overrides(detected, { lr: '  ' })).toEqual({});
  });
});
