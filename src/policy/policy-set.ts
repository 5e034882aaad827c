import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import {
  type DetailedError,
  policySetTextToParts,
  policyToJson,
} from "@cedar-policy/cedar-wasm/nodejs";
import { type PolicyTerms, readPolicyId, readPolicyTerms } from "./annotations.js";
import { describeSingleEntityIn, singleEntityInTests } from "./entity-membership.js";

/** One parsed, checked policy. */
export interface LoadedPolicy {
  /** From `@id`, else `<file name without .cedar>:<index in the file, from 0>`. */
  readonly id: string;
  readonly effect: "permit" | "forbid";
  /** The file the policy came from, as `<dir>/<name>.cedar`. */
  readonly file: string;
  /** The policy's Cedar text, annotations included. */
  readonly text: string;
  readonly terms: PolicyTerms;
}

/** Every policy of a directory, parsed and checked, keyed by policy id. */
export interface LoadedPolicySet {
  readonly dir: string;
  /** The `.cedar` files read, sorted by name. */
  readonly files: readonly string[];
  readonly policies: ReadonlyMap<string, LoadedPolicy>;
}

/** One thing wrong with a policy directory. */
export interface PolicyProblem {
  /** The file at fault; `undefined` when the directory itself is. */
  readonly file: string | undefined;
  readonly policyId: string | undefined;
  readonly message: string;
}

/**
 * A policy directory could not be loaded. `problems` lists everything found, so an
 * operator fixes them in one pass; `file` names the first file at fault.
 */
export class PolicyLoadError extends Error {
  override readonly name = "PolicyLoadError";
  readonly file: string | undefined;
  readonly problems: readonly PolicyProblem[];

  constructor(problems: readonly PolicyProblem[]) {
    super(problems.map(describeProblem).join("\n"));
    this.problems = problems;
    this.file = problems.find((problem) => problem.file !== undefined)?.file;
  }
}

function describeProblem(problem: PolicyProblem): string {
  const where = [problem.file, problem.policyId && `policy "${problem.policyId}"`]
    .filter(Boolean)
    .join(": ");
  return where ? `${where}: ${problem.message}` : problem.message;
}

export interface LoadPolicySetOptions {
  /**
   * The set in force, when reloading. A file that held policies in it and holds
   * none now may have been caught mid-write: `echo '…' > file.cedar` truncates
   * the file before writing it, and a set read in between would drop its
   * policies, a guardrail's `forbid` among them. The directory is then read
   * again after `settle`, and that second read is taken: a file still empty
   * after the wait was emptied on purpose.
   */
  readonly inForce?: LoadedPolicySet;
  /** Waits for a writer to finish (the watch's quiet period) before the second read. */
  readonly settle?: () => Promise<void>;
}

/**
 * Reads every `*.cedar` file directly in `dir` (not in subfolders; dot files are
 * skipped), parses it and checks its annotations. Throws `PolicyLoadError` on any
 * syntax error, bad annotation, template or duplicate policy id.
 */
export async function loadPolicySet(
  dir: string,
  options: LoadPolicySetOptions = {},
): Promise<LoadedPolicySet> {
  const set = await readPolicySet(dir);
  const { inForce, settle } = options;
  if (inForce === undefined || settle === undefined || !emptiedSince(inForce, set)) return set;
  await settle();
  return readPolicySet(dir);
}

/** Whether a file that held policies in `before` is still there in `after` but holds none. */
function emptiedSince(before: LoadedPolicySet, after: LoadedPolicySet): boolean {
  const holding = new Set([...after.policies.values()].map((policy) => policy.file));
  return [...before.policies.values()].some(
    (policy) => after.files.includes(policy.file) && !holding.has(policy.file),
  );
}

async function readPolicySet(dir: string): Promise<LoadedPolicySet> {
  const files = await listPolicyFiles(dir);
  const problems: PolicyProblem[] = [];
  const policies = new Map<string, LoadedPolicy>();
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      problems.push({ file, policyId: undefined, message: `cannot read: ${errorText(error)}` });
      continue;
    }
    for (const policy of parsePolicyFile(file, text, problems)) {
      const existing = policies.get(policy.id);
      if (existing !== undefined) {
        problems.push({
          file,
          policyId: policy.id,
          message: `duplicate policy id, already used in ${existing.file}`,
        });
        continue;
      }
      policies.set(policy.id, policy);
    }
  }
  if (problems.length > 0) throw new PolicyLoadError(problems);
  return { dir, files, policies };
}

async function listPolicyFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new PolicyLoadError([
      {
        file: undefined,
        policyId: undefined,
        message: `cannot read policy directory ${dir}: ${errorText(error)}`,
      },
    ]);
  }
  const files: string[] = [];
  for (const name of names.sort()) {
    // Dot files are editor swap and lock files (and Kubernetes' ..data links).
    if (!name.endsWith(".cedar") || name.startsWith(".")) continue;
    const file = join(dir, name);
    // stat, not the dirent type: ConfigMap volumes mount each file as a symlink.
    const info = await stat(file).catch(() => undefined);
    // A name that cannot be followed (a symlink whose target is missing) stays in
    // the list, so reading it fails loading: skipping it would silently drop its
    // policies, guardrails included, and a reload would install the set without them.
    if (info === undefined || info.isFile()) files.push(file);
  }
  if (files.length === 0) {
    throw new PolicyLoadError([
      {
        file: undefined,
        policyId: undefined,
        message: `no .cedar files in policy directory ${dir}`,
      },
    ]);
  }
  return files;
}

function parsePolicyFile(file: string, text: string, problems: PolicyProblem[]): LoadedPolicy[] {
  const parts = policySetTextToParts(text);
  if (parts.type === "failure") {
    for (const error of parts.errors) {
      problems.push({ file, policyId: undefined, message: describeCedarError(error, text) });
    }
    return [];
  }
  if (parts.policy_templates.length > 0) {
    problems.push({
      file,
      policyId: undefined,
      message: "policy templates (?principal, ?resource) are not supported; write static policies",
    });
  }
  const stem = basename(file, ".cedar");
  const loaded: LoadedPolicy[] = [];
  let searchFrom = 0;
  parts.policies.forEach((policyText, index) => {
    const found = text.indexOf(policyText, searchFrom);
    if (found >= 0) searchFrom = found + policyText.length;
    const at = found >= 0 ? ` (line ${lineOf(text, found)})` : "";
    const json = policyToJson(policyText);
    if (json.type === "failure") {
      const message = json.errors.map((error) => error.message).join("; ");
      problems.push({ file, policyId: `${stem}:${index}`, message: `${message}${at}` });
      return;
    }
    // Cedar reports a bare `@name` as null, which its declared type leaves out.
    const annotations: Readonly<Record<string, string | null>> = json.json.annotations ?? {};
    const named = readPolicyId(annotations);
    if (named !== undefined && "problem" in named) {
      problems.push({ file, policyId: `${stem}:${index}`, message: `${named.problem}${at}` });
      return;
    }
    const id = named?.id ?? `${stem}:${index}`;
    const strangers = unknownEntityTypes(json.json);
    if (strangers.length > 0) {
      problems.push({
        file,
        policyId: id,
        message: `names entity type${strangers.length > 1 ? "s" : ""} ${strangers.map((t) => `\`${t}\``).join(", ")}, which writ never sends (its principals are \`Agent\`, its actions \`Action\` and its resources \`Resource\`): as written the policy could never match${at}`,
      });
      return;
    }
    const memberships = singleEntityInTests(json.json, policyText);
    if (memberships.length > 0) {
      problems.push({ file, policyId: id, message: `${describeSingleEntityIn(memberships)}${at}` });
      return;
    }
    const effect = json.json.effect;
    const read = readPolicyTerms(effect, annotations);
    if (!read.ok) {
      for (const problem of read.problems) {
        problems.push({ file, policyId: id, message: `${problem}${at}` });
      }
      return;
    }
    loaded.push({ id, effect, file, text: policyText, terms: read.terms });
  });
  return loaded;
}

/** The entity types writ's Cedar requests are made of (see cedar-request.ts). */
const KNOWN_TYPES: ReadonlySet<string> = new Set(["Agent", "Action", "Resource"]);

/**
 * The entity types a policy names that writ never sends: in its scope
 * (`principal in Group::"x"`, `resource is Res`) or its conditions
 * (`principal == Agnet::"x"`). Such a test can never hold, so a `forbid`
 * written with a misspelt type would never fire: refused at load rather than
 * left to fail silently.
 */
function unknownEntityTypes(json: unknown): string[] {
  const found = new Set<string>();
  const typeOf = (uid: unknown) => {
    if (
      typeof uid === "object" &&
      uid !== null &&
      typeof (uid as { type?: unknown }).type === "string"
    ) {
      const type = (uid as { type: string }).type;
      if (!KNOWN_TYPES.has(type)) found.add(type);
    }
  };
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) walk(item);
      return;
    }
    if (typeof value !== "object" || value === null) return;
    for (const [key, inner] of Object.entries(value)) {
      if (key === "__entity" || key === "entity") typeOf(inner);
      else if (key === "entities" && Array.isArray(inner)) inner.forEach(typeOf);
      else if (key === "entity_type" && typeof inner === "string" && !KNOWN_TYPES.has(inner)) {
        found.add(inner);
      }
      walk(inner);
    }
  };
  walk(json);
  return [...found].sort();
}

/** Cedar's message, with the line and column its byte offset points at. */
function describeCedarError(error: DetailedError, text: string): string {
  const location = error.sourceLocations?.[0];
  const parts = [error.message];
  if (location?.label) parts.push(location.label);
  if (error.help) parts.push(error.help);
  const message = parts.join(": ");
  if (location === undefined) return message;
  // Cedar counts bytes of UTF-8, not UTF-16 code units.
  const before = Buffer.from(text, "utf8").subarray(0, location.start).toString("utf8");
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return `line ${line}, column ${column}: ${message}`;
}

function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split("\n").length;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
