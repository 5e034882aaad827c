import { readdir, readFile } from "node:fs/promises";

/**
 * CPU time used by processes, for figures per operation: on a shared machine
 * the CPU an operation costs varies far less between runs than its rate.
 * Linux only (it reads /proc); elsewhere every reading is NaN.
 */

/** Clock ticks per second of /proc's times: 100 on every Linux writ supports. */
const TICKS_PER_SECOND = 100;

async function processTicks(pid: number, thread?: number): Promise<number> {
  const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
  const stat = await readFile(path, "utf8");
  // The command name, in parentheses, may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const list = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
    for (const child of list.split(" ")) if (child.trim() !== "") out.push(Number(child));
  }
  return out;
}

/** CPU used so far by a process tree: in all, and by each process's main thread. */
export interface TreeCpu {
  /** Seconds used by `pid` and every process under it that is still running. */
  readonly seconds: number;
  /** Seconds used by the main thread (the JavaScript event loop) of each of those processes, by pid. */
  readonly mainThreads: ReadonlyMap<number, number>;
}

/** The CPU used so far by `pid` and every process under it that is still running. */
export async function treeCpu(pid: number): Promise<TreeCpu> {
  const mainThreads = new Map<number, number>();
  if (process.platform !== "linux") return { seconds: Number.NaN, mainThreads };
  let ticks = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop() as number;
    try {
      ticks += await processTicks(next);
      mainThreads.set(next, (await processTicks(next, next)) / TICKS_PER_SECOND);
    } catch {
      continue;
    }
    pending.push(...(await childrenOf(next)));
  }
  return { seconds: ticks / TICKS_PER_SECOND, mainThreads };
}

/** Seconds of CPU used so far by `pid` and every process under it that is still running. */
export async function cpuSeconds(pid: number): Promise<number> {
  return (await treeCpu(pid)).seconds;
}

/** CPU seconds of this process (the load generator), user and system. */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
