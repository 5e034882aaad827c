import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { approverGroups, requiredQuorum } from "../domain/decision.js";
import { type JsonObject, nestsWithin } from "../domain/json.js";
import { createCedarPolicyEngine, type PolicyEvaluation } from "./cedar-engine.js";
import type { PolicyDefaults } from "./decision-rules.js";

export interface PolicyTestOptions {
  /** The policy directory under test. */
  readonly policiesDir: string;
  /** Where the `*.json` case files are; `<policiesDir>/tests` by default. */
  readonly testsDir?: string;
  /** Terms used when no policy sets its own; 900 s TTL and 3600 s approval wait by default. */
  readonly defaults?: PolicyDefaults;
}

/** A case whose decision differed from what it expected. */
export interface PolicyTestFailure {
  /** The case file. */
  readonly file: string;
  /** The case's `name`. */
  readonly name: string;
  /** The expectations that did not hold, e.g. `effect approve; quorum 2`. */
  readonly expected: string;
  /** What the policies decided for the same fields. */
  readonly actual: string;
}

export interface PolicyTestResult {
  readonly passed: number;
  readonly failed: readonly PolicyTestFailure[];
}

/**
 * Which part of the cases is wrong: the tests directory is missing, unreadable
 * or holds no case file (`policy_tests_missing`), or a case file is unreadable
 * or malformed (`policy_case_file_invalid`).
 */
export type PolicyTestFileErrorCode = "policy_tests_missing" | "policy_case_file_invalid";

/** A case file (or the tests directory) is unreadable or malformed. */
export class PolicyTestFileError extends Error {
  override readonly name = "PolicyTestFileError";
  readonly code: PolicyTestFileErrorCode;
  readonly file: string;
  /** Each problem found, e.g. `cases[2].expect: Invalid option: …`. */
  readonly issues: readonly string[];

  constructor(code: PolicyTestFileErrorCode, file: string, issues: readonly string[]) {
    super(`${file}: ${issues.join("; ")}`);
    this.code = code;
    this.file = file;
    this.issues = issues;
  }
}

const DEFAULT_TEST_DEFAULTS: PolicyDefaults = { ttlSeconds: 900, approvalTimeoutSeconds: 3600 };

const name = z.string().min(1);

const testCaseSchema = z.strictObject({
  name,
  description: z.string().optional(),
  principal: z.strictObject({
    id: name,
    owner: name,
    attributes: z.record(z.string(), z.string()).optional(),
  }),
  action: name,
  resource: name,
  context: z.record(z.string(), z.json()).optional(),
  expect: z.enum(["allow", "approve", "deny"]),
  expect_policies: z.array(name).optional(),
  expect_groups: z.array(name).optional(),
  expect_quorum: z.int().min(0).optional(),
  expect_ttl_seconds: z.int().positive().optional(),
  expect_approval_timeout_seconds: z.int().positive().optional(),
  expect_reason_required: z.boolean().optional(),
  expect_sensitive: z.array(name).optional(),
  /** 0 when the decision escalates nothing. */
  expect_escalate_after_seconds: z.int().min(0).optional(),
  expect_escalate_to: z.array(name).optional(),
  expect_notify: z.array(name).optional(),
  expect_review_after: z.array(name).optional(),
  /** Policies expected to fail to evaluate (`request` when the request itself fails); none by default. */
  expect_errors: z.array(name).optional(),
});

const testFileSchema = z.strictObject({
  description: z.string().optional(),
  cases: z.array(testCaseSchema).min(1),
});

type TestCase = z.infer<typeof testCaseSchema>;

/** Cedar takes a context up to 32 levels deep; a case file adds four levels around it. */
const MAX_CASE_FILE_DEPTH = 64;

/**
 * Runs every case in `testsDir` against the policies in `policiesDir`. Throws
 * `PolicyLoadError` if the policies do not load and `PolicyTestFileError` if a case
 * file is malformed; a case that decides otherwise than expected is a failure.
 */
export async function runPolicyTests(options: PolicyTestOptions): Promise<PolicyTestResult> {
  const testsDir = options.testsDir ?? join(options.policiesDir, "tests");
  const files = await listCaseFiles(testsDir);
  const suites: { file: string; cases: TestCase[] }[] = [];
  for (const file of files) suites.push({ file, cases: await readCaseFile(file) });

  const engine = await createCedarPolicyEngine({
    dir: options.policiesDir,
    defaults: options.defaults ?? DEFAULT_TEST_DEFAULTS,
  });
  try {
    let passed = 0;
    const failed: PolicyTestFailure[] = [];
    for (const { file, cases } of suites) {
      for (const testCase of cases) {
        const evaluation = engine.evaluate({
          agent: {
            kind: "agent",
            id: testCase.principal.id,
            owner: testCase.principal.owner,
            attributes: testCase.principal.attributes ?? {},
          },
          action: testCase.action,
          resource: testCase.resource,
          context: (testCase.context ?? {}) as JsonObject,
        });
        const mismatch = compareCase(testCase, evaluation);
        if (mismatch === undefined) passed += 1;
        else failed.push({ file, name: testCase.name, ...mismatch });
      }
    }
    return { passed, failed };
  } finally {
    engine.close();
  }
}

async function listCaseFiles(testsDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(testsDir);
  } catch (error) {
    throw new PolicyTestFileError("policy_tests_missing", testsDir, [
      `cannot read the tests directory: ${text(error)}`,
    ]);
  }
  const files = names
    .filter((entry) => entry.endsWith(".json") && !entry.startsWith("."))
    .sort()
    .map((entry) => join(testsDir, entry));
  if (files.length === 0)
    throw new PolicyTestFileError("policy_tests_missing", testsDir, ["no .json case files"]);
  return files;
}

async function readCaseFile(file: string): Promise<TestCase[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new PolicyTestFileError("policy_case_file_invalid", file, [
      `not readable JSON: ${text(error)}`,
    ]);
  }
  // The schema walks the file recursively: a deep enough one overflows the stack.
  if (!nestsWithin(raw, MAX_CASE_FILE_DEPTH)) {
    throw new PolicyTestFileError("policy_case_file_invalid", file, [
      `nests deeper than ${MAX_CASE_FILE_DEPTH} levels`,
    ]);
  }
  const parsed = testFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new PolicyTestFileError(
      "policy_case_file_invalid",
      file,
      parsed.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`),
    );
  }
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const { name: caseName } of parsed.data.cases) {
    if (seen.has(caseName)) duplicates.add(caseName);
    seen.add(caseName);
  }
  if (duplicates.size > 0) {
    throw new PolicyTestFileError(
      "policy_case_file_invalid",
      file,
      [...duplicates].map((caseName) => `duplicate case name "${caseName}"`),
    );
  }
  return parsed.data.cases;
}

/** The expectations that failed, or `undefined` when the case passes. */
function compareCase(
  testCase: TestCase,
  { decision, errors }: PolicyEvaluation,
): { expected: string; actual: string } | undefined {
  const checks: [label: string, expected: string | undefined, actual: string][] = [
    ["effect", testCase.expect, decision.effect],
    ["policies", expectedSetText(testCase.expect_policies), setText(decision.policies)],
    ["groups", expectedSetText(testCase.expect_groups), setText(approverGroups(decision))],
    ["quorum", numberText(testCase.expect_quorum), String(requiredQuorum(decision))],
    ["ttl_seconds", numberText(testCase.expect_ttl_seconds), String(decision.ttlSeconds)],
    [
      "approval_timeout_seconds",
      numberText(testCase.expect_approval_timeout_seconds),
      String(decision.approvalTimeoutSeconds),
    ],
    [
      "reason_required",
      testCase.expect_reason_required === undefined
        ? undefined
        : String(testCase.expect_reason_required),
      String(decision.reasonRequired),
    ],
    ["sensitive", expectedSetText(testCase.expect_sensitive), setText(decision.sensitiveFields)],
    [
      "escalate_after_seconds",
      numberText(testCase.expect_escalate_after_seconds),
      String(decision.escalation?.afterSeconds ?? 0),
    ],
    [
      "escalate_to",
      expectedSetText(testCase.expect_escalate_to),
      setText(decision.escalation?.groups ?? []),
    ],
    ["notify", expectedSetText(testCase.expect_notify), setText(decision.notify ?? [])],
    [
      "review_after",
      expectedSetText(testCase.expect_review_after),
      setText(decision.reviewAfter ?? []),
    ],
    // Checked even when the case says nothing: an error denies, so without this
    // a case expecting a deny would pass on a policy that failed to evaluate
    // (often on a field the case left out but the server always sends) rather
    // than on the rule it meant to test.
    [
      "errors",
      setText(testCase.expect_errors ?? []),
      setText(errors.map((error) => error.policyId ?? "request")),
    ],
  ];
  const failing = checks.filter(
    ([, expected, actual]) => expected !== undefined && expected !== actual,
  );
  if (failing.length === 0) return undefined;
  const actual = failing.map(([label, , value]) => `${label} ${value}`);
  if (errors.length > 0) {
    const described = errors.map((error) => `${error.policyId ?? "request"}: ${error.message}`);
    actual.push(`evaluation errors: ${described.join(", ")}`);
  }
  return {
    expected: failing.map(([label, value]) => `${label} ${value}`).join("; "),
    actual: actual.join("; "),
  };
}

/** A list compared as a set: order and repeats do not matter. */
function setText(values: readonly string[]): string {
  return `[${[...new Set(values)].sort().join(", ")}]`;
}

function expectedSetText(values: readonly string[] | undefined): string | undefined {
  return values === undefined ? undefined : setText(values);
}

function numberText(value: number | undefined): string | undefined {
  return value === undefined ? undefined : String(value);
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(file)";
  return path
    .map((key, index) =>
      typeof key === "number" ? `[${key}]` : `${index === 0 ? "" : "."}${String(key)}`,
    )
    .join("");
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
