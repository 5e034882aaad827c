import { describe, expect, it } from "vitest";
import { oneAtATime } from "../../src/service/one-at-a-time.js";

/** A task that records when it starts and ends, and settles when told. */
function gate(log: string[], name: string) {
  let settle: (fail: boolean) => void = () => {};
  const task = () => {
    log.push(`${name} start`);
    return new Promise<string>((resolve, reject) => {
      settle = (fail) => {
        log.push(`${name} end`);
        if (fail) reject(new Error(name));
        else resolve(name);
      };
    });
  };
  return { task, settle: (fail = false) => settle(fail) };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("oneAtATime", () => {
  it("runs tasks under one key one after another, in arrival order", async () => {
    const queue = oneAtATime();
    const log: string[] = [];
    const [a, b, c] = [gate(log, "a"), gate(log, "b"), gate(log, "c")];
    const results = [queue.run("k", a.task), queue.run("k", b.task), queue.run("k", c.task)];
    await turn();
    expect(log).toEqual(["a start"]);
    a.settle();
    await turn();
    expect(log).toEqual(["a start", "a end", "b start"]);
    b.settle(true);
    await turn();
    c.settle();
    const settled = await Promise.allSettled(results);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(log).toEqual(["a start", "a end", "b start", "b end", "c start", "c end"]);
  });

  it("a failed task does not stop the next one", async () => {
    const queue = oneAtATime();
    const first = queue.run("k", async () => {
      throw new Error("boom");
    });
    const second = queue.run("k", async () => "ran");
    await expect(first).rejects.toThrow("boom");
    await expect(second).resolves.toBe("ran");
  });

  it("runs tasks under different keys at once", async () => {
    const queue = oneAtATime();
    const log: string[] = [];
    const [a, b] = [gate(log, "a"), gate(log, "b")];
    const results = [queue.run("x", a.task), queue.run("y", b.task)];
    await turn();
    expect(log).toEqual(["a start", "b start"]);
    b.settle();
    a.settle();
    await Promise.all(results);
  });

  it("forgets a key once its last task has settled", async () => {
    const queue = oneAtATime();
    const tasks = Array.from({ length: 100 }, (_, i) => queue.run(`k${i % 3}`, async () => i));
    expect(queue.size).toBe(3);
    await Promise.allSettled(tasks);
    await turn();
    expect(queue.size).toBe(0);
    await queue
      .run("k0", async () => {
        throw new Error("x");
      })
      .catch(() => {});
    await turn();
    expect(queue.size).toBe(0);
  });
});
