/**
 * The jobs service's errors: `{"status": 400, "field": "schedule", "message": "..."}`.
 * Pure: no JupyterLab imports.
 */

export class JobsError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** the request field the service refused, when it names one */
    readonly field?: string
  ) {
    super(message);
    this.name = 'JobsError';
  }
}

/** The error a failed response carries; its body may be JSON from the service or anything. */
export function errorFrom(status: number, body: string): JobsError {
  try {
    const data = JSON.parse(body) as { message?: unknown; field?: unknown };
    if (data && typeof data.message === 'string') {
      return new JobsError(data.message, status, typeof data.field === 'string' ? data.field : undefined);
    }
  } catch {
    // not JSON: a proxy's or server's own page
  }
  if (status === 503 || status === 502) {
    return new JobsError('The jobs service is not reachable right now; try again in a moment.', status);
  }
  if (status === 403) {
    return new JobsError('You are not allowed to do this.', status);
  }
  return new JobsError(`The jobs service answered ${status}.`, status);
}

/** The message beside a field: the service says "schedule: needs 5 fields"; the field shows "needs 5 fields". */
export function fieldMessage(err: JobsError): string {
  const prefix = err.field ? `${err.field}: ` : '';
  return prefix && err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}
