import { readdir, readFile } from "node:fs/promises";

/**
 * CPU time used by processes, for figures per operation: on a shared machine
 * the CPU an operation costs varies far less between runs than its rate.
 * Linux only (it reads /proc); elsewhere every reading is NaN.
 */

/** Clock ticks per second of /proc's times: 100 on every Linux writ supports. */
const TICKS_PER_SECOND = 100;

async function processTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
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

/** Seconds of CPU used so far by `pid` and every process under it that is still running. */
export async function cpuSeconds(pid: number): Promise<number> {
  if (process.platform !== "linux") return Number.NaN;
  let ticks = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop() as number;
    try {
      ticks += await processTicks(next);
    } catch {
      continue;
    }
    pending.push(...(await childrenOf(next)));
  }
  return ticks / TICKS_PER_SECOND;
}

/** CPU seconds of this process (the load generator), user and system. */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
