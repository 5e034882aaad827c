/** The error a Redis call that ran past its deadline rejects with. */
export class OperationTimeout extends Error {
  override readonly name = "OperationTimeout";
}

/**
 * `op`, or a rejection with {@link OperationTimeout} once `ms` have passed.
 * writ bounds every Redis call it waits on this way, once per operation, rather
 * than with node-redis's per-command timer: a frozen Redis (answering nothing on
 * an open connection) then costs a caller at most `ms`, never a hang.
 */
export async function withDeadline<T>(ms: number, op: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      op,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new OperationTimeout("deadline")), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
