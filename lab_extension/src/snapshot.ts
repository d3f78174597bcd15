/**
 * What "Schedule this notebook" sends: the notebook without its outputs. A run executes
 * every cell again, so outputs (often tens of MB of plots) would only make the upload slow;
 * the jobs service strips them too, for any other client.
 */
export function withoutOutputs(notebook: Record<string, unknown>): Record<string, unknown> {
  const cells = Array.isArray(notebook.cells) ? notebook.cells : [];
  return {
    ...notebook,
    cells: cells.map(cell =>
      cell && typeof cell === 'object' && (cell as { cell_type?: unknown }).cell_type === 'code'
        ? { ...(cell as object), outputs: [], execution_count: null }
        : cell
    )
  };
}
