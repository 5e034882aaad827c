import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createCedarPolicyEngine, type PolicyReloadInfo } from "../../src/policy/cedar-engine.js";
import { PolicyLoadError } from "../../src/policy/policy-set.js";
import { DEFAULTS, query, tempPolicies } from "./temp-policies.js";

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const ALLOW_READ = `@id("read") permit(principal, action == Action::"read", resource);`;
const ALLOW_WRITE = `@id("write") permit(principal, action == Action::"write", resource);`;

async function setUp(
  options: { watch?: boolean; onReload?: (info: PolicyReloadInfo) => void } = {},
) {
  const temp = await tempPolicies({ "main.cedar": ALLOW_READ });
  cleanups.push(temp.remove);
  const errors: unknown[] = [];
  const engine = await createCedarPolicyEngine({
    dir: temp.dir,
    defaults: DEFAULTS,
    watch: options.watch ?? false,
    onError: (error) => errors.push(error),
    ...(options.onReload ? { onReload: options.onReload } : {}),
  });
  cleanups.push(() => engine.close());
  return { temp, engine, errors };
}

/** Resolves with the next value `register` hands over, or rejects after `ms`. */
function nextCall<T>(ms: number): { callback: (value: T) => void; promise: Promise<T> } {
  let callback: (value: T) => void = () => {};
  const promise = new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no call within ${ms} ms`)), ms);
    callback = (value) => {
      clearTimeout(timer);
      resolve(value);
    };
  });
  return { callback, promise };
}

describe("reloading policies", () => {
  it("picks up a change on reload()", async () => {
    const { temp, engine } = await setUp();
    expect(engine.decide(query("write", "r")).effect).toBe("deny");

    await temp.write("main.cedar", ALLOW_WRITE);
    await engine.reload();

    expect(engine.decide(query("write", "r")).effect).toBe("allow");
    expect(engine.decide(query("read", "r")).effect).toBe("deny");
    expect(engine.policyIds()).toEqual(["write"]);
  });

  it("keeps the last good set when an edit is broken", async () => {
    const { temp, engine } = await setUp();

    await temp.write("main.cedar", `${ALLOW_WRITE}\npermit(principal, action`);
    await expect(engine.reload()).rejects.toBeInstanceOf(PolicyLoadError);
    expect(engine.decide(query("read", "r")).effect).toBe("allow");
    expect(engine.decide(query("write", "r")).effect).toBe("deny");

    await temp.write("main.cedar", `@approvers("") ${ALLOW_WRITE}`);
    await expect(engine.reload()).rejects.toThrow(/@approvers must be/);
    expect(engine.policyIds()).toEqual(["read"]);

    // Overlapping reloads run one after another and all land on the fixed file.
    await temp.write("main.cedar", ALLOW_WRITE);
    await Promise.all([engine.reload(), engine.reload(), engine.reload()]);
    expect(engine.decide(query("write", "r")).effect).toBe("allow");
  });

  it("keeps the last good set when a symlinked guardrail can no longer be followed", async () => {
    const temp = await tempPolicies({
      "open.cedar": `@id("open") permit(principal, action, resource);`,
      "guardrails.real": `@id("no-drop") forbid(principal, action == Action::"drop", resource);`,
    });
    cleanups.push(temp.remove);
    await symlink(join(temp.dir, "guardrails.real"), join(temp.dir, "guardrails.cedar"));
    const engine = await createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS });
    cleanups.push(() => engine.close());
    expect(engine.decide(query("drop", "r")).effect).toBe("deny");

    await rm(join(temp.dir, "guardrails.real"));
    await expect(engine.reload()).rejects.toThrow(/guardrails\.cedar: cannot read/);
    expect(engine.policyIds()).toEqual(["no-drop", "open"]);
    expect(engine.decide(query("drop", "r")).policies).toEqual(["no-drop"]);
  });

  it("takes a file emptied on purpose, once it is still empty after the quiet period", async () => {
    const temp = await tempPolicies({
      "main.cedar": ALLOW_READ,
      "guardrails.cedar": `@id("no-drop") forbid(principal, action == Action::"drop", resource);`,
    });
    cleanups.push(temp.remove);
    const engine = await createCedarPolicyEngine({
      dir: temp.dir,
      defaults: DEFAULTS,
      watchDebounceMs: 1,
    });
    cleanups.push(() => engine.close());
    await temp.write("guardrails.cedar", "");
    await engine.reload();
    expect(engine.policyIds()).toEqual(["read"]);
  });

  it("reports each successful reload", async () => {
    const reloads: PolicyReloadInfo[] = [];
    const { temp, engine } = await setUp({ onReload: (info) => reloads.push(info) });
    await temp.write("extra.cedar", ALLOW_WRITE);
    await engine.reload();
    expect(reloads).toHaveLength(1);
    expect(reloads[0]?.policyIds).toEqual(["read", "write"]);
    expect(reloads[0]?.files.map((file) => file.slice(temp.dir.length + 1))).toEqual([
      "extra.cedar",
      "main.cedar",
    ]);
  });

  it("reloads by itself when watching and a file changes", async () => {
    const reloaded = nextCall<PolicyReloadInfo>(5_000);
    const { temp, engine } = await setUp({ watch: true, onReload: reloaded.callback });

    await temp.write("main.cedar", `${ALLOW_READ}\n${ALLOW_WRITE}`);
    const info = await reloaded.promise;

    expect(info.policyIds).toEqual(["read", "write"]);
    expect(engine.decide(query("write", "r")).effect).toBe("allow");
  });

  it("reports a broken edit seen while watching and keeps deciding", async () => {
    const failed = nextCall<unknown>(5_000);
    const temp = await tempPolicies({ "main.cedar": ALLOW_READ });
    cleanups.push(temp.remove);
    const engine = await createCedarPolicyEngine({
      dir: temp.dir,
      defaults: DEFAULTS,
      watch: true,
      onError: failed.callback,
    });
    cleanups.push(() => engine.close());

    await temp.write("main.cedar", "permit(");
    expect(await failed.promise).toBeInstanceOf(PolicyLoadError);
    expect(engine.decide(query("read", "r")).effect).toBe("allow");
  });

  describe("when the directory itself is replaced", () => {
    /** `<parent>/policies` holding ALLOW_READ, watched by an engine that records its reloads. */
    async function watchedInParent(link: boolean) {
      const parent = await mkdtemp(join(tmpdir(), "writ-policies-parent-"));
      cleanups.push(() => rm(parent, { recursive: true, force: true }));
      const dir = join(parent, "policies");
      const first = link ? join(parent, "v1") : dir;
      await mkdir(first);
      await writeFile(join(first, "main.cedar"), ALLOW_READ);
      if (link) await symlink(first, dir);
      const reloads: PolicyReloadInfo[] = [];
      const waiters: (() => void)[] = [];
      const engine = await createCedarPolicyEngine({
        dir,
        defaults: DEFAULTS,
        watch: true,
        watchDebounceMs: 20,
        onReload: (info) => {
          reloads.push(info);
          for (const wake of waiters.splice(0)) wake();
        },
      });
      cleanups.push(() => engine.close());
      /** Resolves once a reload installed exactly `ids`; rejects after 5 s. */
      async function reloadedTo(ids: string[]): Promise<void> {
        const deadline = Date.now() + 5_000;
        while (!reloads.some((info) => info.policyIds.join() === ids.join())) {
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`no reload to ${ids.join()}: ${JSON.stringify(reloads)}`);
          await new Promise<void>((wake) => {
            const timer = setTimeout(wake, left);
            waiters.push(() => {
              clearTimeout(timer);
              wake();
            });
          });
        }
      }
      return { parent, dir, engine, reloadedTo };
    }

    it("keeps reloading after the directory is moved aside for a new one", async () => {
      const { dir, engine, reloadedTo } = await watchedInParent(false);
      await rename(dir, `${dir}.old`);
      await mkdir(dir);
      await writeFile(join(dir, "main.cedar"), ALLOW_WRITE);
      await reloadedTo(["write"]);

      // An edit in the new directory is picked up too, not only the swap itself.
      await writeFile(join(dir, "main.cedar"), `${ALLOW_READ}\n${ALLOW_WRITE}`);
      await reloadedTo(["read", "write"]);
      expect(engine.decide(query("read", "r")).effect).toBe("allow");
    });

    it("reloads when a symlink to the directory is pointed at a new release", async () => {
      const { parent, dir, engine, reloadedTo } = await watchedInParent(true);
      await mkdir(join(parent, "v2"));
      await writeFile(join(parent, "v2", "main.cedar"), ALLOW_WRITE);
      // How deploy tools switch releases: a new link renamed over the old one.
      await symlink(join(parent, "v2"), join(parent, "next"));
      await rename(join(parent, "next"), dir);
      await reloadedTo(["write"]);
      expect(engine.decide(query("read", "r")).effect).toBe("deny");

      await writeFile(join(parent, "v2", "main.cedar"), `${ALLOW_READ}\n${ALLOW_WRITE}`);
      await reloadedTo(["read", "write"]);
    });
  });

  it("refuses to start on a broken directory", async () => {
    const temp = await tempPolicies({ "main.cedar": "forbid(" });
    cleanups.push(temp.remove);
    await expect(createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS })).rejects.toThrow(
      /main\.cedar: line 1/,
    );
  });
});
