/**
 * Runs tasks one at a time per key, in the order they arrive; tasks under
 * different keys run concurrently. In-process only: it spares work, it is no
 * lock across replicas (correctness rests on the store's compare-and-swap).
 */
export function oneAtATime() {
  /** The last task queued under each key; removed once that task settles. */
  const tails = new Map<string, Promise<unknown>>();
  return {
    run<T>(key: string, task: () => Promise<T>): Promise<T> {
      const previous = tails.get(key);
      const settledPrevious = previous?.then(
        () => undefined,
        () => undefined,
      );
      const result = settledPrevious === undefined ? task() : settledPrevious.then(task);
      tails.set(key, result);
      const forget = () => {
        if (tails.get(key) === result) tails.delete(key);
      };
      result.then(forget, forget);
      return result;
    },
    /** Keys with a task queued or running. */
    get size(): number {
      return tails.size;
    },
  };
}
