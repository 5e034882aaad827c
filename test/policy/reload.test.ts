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

  it("refuses to start on a broken directory", async () => {
    const temp = await tempPolicies({ "main.cedar": "forbid(" });
    cleanups.push(temp.remove);
    await expect(createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS })).rejects.toThrow(
      /main\.cedar: line 1/,
    );
  });
});
