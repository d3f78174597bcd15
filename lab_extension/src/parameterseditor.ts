/**
 * The dialog's parameters: one field per assignment of the notebook's `parameters` cell,
 * showing the job's stored value or the notebook's default; only changed values are sent.
 */
import { h } from './dom';
import { IParameter, overrides, parametersCell, parseParameters, toPython } from './parameters';

export class ParametersEditor {
  readonly node: HTMLFieldSetElement;
  private readonly params: IParameter[];
  private readonly inputs = new Map<string, HTMLInputElement>();

  constructor(id: (f: string) => string, notebook: Record<string, unknown>, stored: Record<string, unknown>, error: HTMLElement) {
    const source = parametersCell(notebook as { cells?: [] });
    this.params = source === null ? [] : parseParameters(source);
    this.node = h('fieldset', { className: 'moonhub-Parameters', 'data-field': 'parameters' }, h('legend', { text: 'Parameters' }));
    if (!this.params.length) {
      this.node.append(
        h('p', {
          className: 'moonhub-Help',
          text: 'No parameters found. Tag a cell "parameters" (papermill\'s convention) to set values per job.'
        })
      );
    }
    for (const p of this.params) {
      const input = h('input', {
        id: id(`param-${p.name}`),
        className: 'jp-mod-styled',
        value: p.name in stored ? toPython(stored[p.name]) : p.text,
        placeholder: p.text,
        spellcheck: false,
        'data-param': p.name
      });
      this.inputs.set(p.name, input);
      this.node.append(h('div', { className: 'moonhub-Param' }, h('label', { for: input.id }, h('code', { text: p.name })), input));
    }
    this.node.append(error);
  }

  /** The first field (where a parameters error sends the focus). */
  get first(): HTMLInputElement | undefined {
    return this.inputs.values().next().value;
  }

  /** The values that differ from the notebook's defaults, typed. */
  values(): Record<string, unknown> {
    const edited: Record<string, string> = {};
    for (const [name, input] of this.inputs) {
      edited[name] = input.value;
    }
    return overrides(this.params, edited);
  }
}
