// First: it must run before any call into the Cedar WebAssembly module is optimized.
import "./wasm-call-inlining.js";
import { setTimeout as delay } from "node:timers/promises";
import { preparsePolicySet, statefulIsAuthorized } from "@cedar-policy/cedar-wasm/nodejs";
import type { Decision } from "../domain/decision.js";
import type { PolicyEngine, PolicyQuery } from "../ports/policy.js";
import { type CedarRequest, toCedarRequest } from "./cedar-request.js";
import {
  allSensitiveFields,
  combineDecision,
  denyDecision,
  type PolicyDefaults,
} from "./decision-rules.js";
import { type LoadedPolicySet, loadPolicySet, PolicyLoadError } from "./policy-set.js";
import { type DirectoryWatch, watchDirectory } from "./watch-directory.js";

/** What a successful reload installed. */
export interface PolicyReloadInfo {
  readonly policyIds: readonly string[];
  readonly files: readonly string[];
}

/** An evaluation failure, for logs: it never reaches the caller's decision. */
export interface PolicyEvaluationError {
  /** The policy that failed; `undefined` when the request itself could not be evaluated. */
  readonly policyId: string | undefined;
  /** Cedar's message. Some quote values from the request: where that matters, log ids only. */
  readonly message: string;
}

/** A decision together with the evaluation errors behind it, if any. */
export interface PolicyEvaluation {
  readonly decision: Decision;
  /** Non-empty only when the decision is a fail-closed `deny`. */
  readonly errors: readonly PolicyEvaluationError[];
}

export interface CedarPolicyEngineOptions {
  /** Directory of `*.cedar` files (not searched recursively). */
  readonly dir: string;
  readonly defaults: PolicyDefaults;
  /** Reload when the directory changes. Off by default. */
  readonly watch?: boolean;
  /**
   * Quiet period after the last change before reloading; 100 ms by default. A
   * reload that finds a file emptied of its policies waits this long again and
   * rereads, in case it caught the file between truncation and write.
   */
  readonly watchDebounceMs?: number;
  /** Called after each successful reload, once the new set is in force; not at start. */
  readonly onReload?: (info: PolicyReloadInfo) => void;
  /** Called when a watched reload fails; the last good policy set stays in force. */
  readonly onError?: (error: unknown) => void;
  /** Called when an evaluation fails and the engine denies; for logs. */
  readonly onEvaluationError?: (errors: readonly PolicyEvaluationError[]) => void;
  /**
   * Most decisions remembered for the set in force, the least recently used dropped
   * first; 4096 by default, 0 turns the cache off. Agents repeat the same request,
   * and Cedar's answer depends only on the set and the request.
   */
  readonly decisionCacheSize?: number;
}

/** How the decision cache is doing, for metrics and tests. */
export interface DecisionCacheStats {
  /** Evaluations answered from the cache since the engine started. */
  readonly hits: number;
  /** Evaluations Cedar answered since the engine started. */
  readonly misses: number;
  /** Decisions held for the set in force. */
  readonly entries: number;
}

/** The Cedar-backed policy engine, with the controls its owner needs. */
export interface CedarPolicyEngine extends PolicyEngine {
  /** Like `decide`, with the evaluation errors that caused a fail-closed deny. */
  evaluate(query: PolicyQuery): PolicyEvaluation;
  /**
   * Loads the directory again and swaps the new set in at once. On failure the
   * current set stays in force and the returned promise rejects (`PolicyLoadError`).
   */
  reload(): Promise<void>;
  /** Ids of the policies in force, sorted. */
  policyIds(): string[];
  /** Hits and misses of the decision cache, and its size for the set in force. */
  decisionCacheStats(): DecisionCacheStats;
  /** Stops watching. Decisions keep working with the set in force. */
  close(): void;
}

interface ActiveSet {
  readonly slot: string;
  readonly set: LoadedPolicySet;
  /**
   * Evaluations without errors, by Cedar request, in least- to most-recently-used
   * order. It lives and dies with its set: a reload starts from an empty one, and
   * no answer computed against an older set can be served after it.
   */
  readonly decisions: Map<string, PolicyEvaluation>;
}

const DEFAULT_DECISION_CACHE_SIZE = 4096;

/**
 * Longer requests are evaluated every time, not remembered. With the default size
 * the keys then hold at most 4096 × 4096 UTF-16 code units (32 MiB at worst, half
 * that for Latin-1 text), plus one decision each, which the policy set bounds.
 */
const MAX_CACHE_KEY_CHARS = 4096;

let engineCount = 0;

/**
 * Loads the policies in `options.dir` (throwing `PolicyLoadError` if they are
 * invalid) and returns an engine that decides against them. Policies are parsed
 * once per load, never per request.
 */
export async function createCedarPolicyEngine(
  options: CedarPolicyEngineOptions,
): Promise<CedarPolicyEngine> {
  checkDefaults(options.defaults);
  const { defaults } = options;
  const cacheSize = options.decisionCacheSize ?? DEFAULT_DECISION_CACHE_SIZE;
  const debounceMs = options.watchDebounceMs ?? 100;
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 0) {
    throw new TypeError(
      `decisionCacheSize must be a non-negative integer, got ${String(cacheSize)}`,
    );
  }
  let hits = 0;
  let misses = 0;
  // Cedar keeps preparsed sets in a process-wide cache with no way to drop one. Two
  // slots per engine, written alternately, keep memory bounded across reloads; the
  // slot in force is never written to, so a request sees the old set or the new one.
  engineCount += 1;
  const slots = [`writ-policies-${engineCount}-a`, `writ-policies-${engineCount}-b`] as const;
  let active: ActiveSet = install(
    slots[0],
    checkEscalations(await loadPolicySet(options.dir), defaults),
  );
  let queue: Promise<void> = Promise.resolve();
  let watcher: DirectoryWatch | undefined;

  function evaluate(query: PolicyQuery): PolicyEvaluation {
    // Synchronous, so no reload swaps `active` in the middle: the lookup, the
    // evaluation and the insert all concern the set in force.
    const current = active;
    let result: PolicyEvaluation;
    try {
      const request = toCedarRequest(query);
      // The whole request Cedar sees (principal with its attributes, action,
      // resource, context, entities). The builder adds fields in a fixed order, so
      // the same query gives the same key; context keys in another order only miss.
      const key = cacheSize > 0 ? JSON.stringify(request) : undefined;
      const cached = key === undefined ? undefined : recall(current.decisions, key);
      if (cached !== undefined) {
        hits += 1;
        return cached;
      }
      misses += 1;
      result = frozenCopy(evaluateWith(current, request, defaults));
      // Failed evaluations are not remembered: each one must reach the log.
      if (result.errors.length === 0 && key !== undefined && key.length <= MAX_CACHE_KEY_CHARS) {
        remember(current.decisions, key, result, cacheSize);
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      result = frozenCopy({
        decision: denyDecision([], defaults, allSensitiveFields(current.set.policies)),
        errors: [{ policyId: undefined, message }],
      });
    }
    if (result.errors.length > 0) report(result.errors);
    return result;
  }

  function report(errors: readonly PolicyEvaluationError[]): void {
    try {
      options.onEvaluationError?.(errors);
    } catch {
      // A failing log hook must not turn a deny into a crash.
    }
  }

  function reload(): Promise<void> {
    // Serialised: the last reload to start reads the directory last and wins.
    const next = queue.then(async () => {
      const set = checkEscalations(
        await loadPolicySet(options.dir, {
          inForce: active.set,
          settle: () => delay(debounceMs, undefined, { ref: false }),
        }),
        defaults,
      );
      const slot = active.slot === slots[0] ? slots[1] : slots[0];
      active = install(slot, set);
      options.onReload?.({ policyIds: sortedIds(set), files: set.files });
    });
    queue = next.catch(() => {});
    return next;
  }

  if (options.watch === true) {
    const onWatchError = (error: unknown): void => options.onError?.(error);
    watcher = watchDirectory(options.dir, {
      debounceMs,
      onChange: () => {
        reload().catch(onWatchError);
      },
      onError: onWatchError,
    });
  }

  return {
    decide: (query) => evaluate(query).decision,
    evaluate,
    reload,
    policyIds: () => sortedIds(active.set),
    decisionCacheStats: () => ({ hits, misses, entries: active.decisions.size }),
    close() {
      watcher?.close();
      watcher = undefined;
    },
  };
}

function evaluateWith(
  { slot, set }: ActiveSet,
  request: CedarRequest,
  defaults: PolicyDefaults,
): PolicyEvaluation {
  const answer = statefulIsAuthorized({ ...request, preparsedPolicySetId: slot });
  if (answer.type === "failure") {
    return {
      decision: denyDecision([], defaults, allSensitiveFields(set.policies)),
      errors: answer.errors.map((error) => ({ policyId: undefined, message: error.message })),
    };
  }
  const { decision, diagnostics } = answer.response;
  const outcome = {
    decision,
    reasons: diagnostics.reason,
    errored: diagnostics.errors.map((error) => error.policyId),
  };
  return {
    decision: combineDecision(outcome, set.policies, defaults),
    errors: diagnostics.errors.map((error) => ({
      policyId: error.policyId,
      message: error.error.message,
    })),
  };
}

function install(slot: string, set: LoadedPolicySet): ActiveSet {
  const staticPolicies: Record<string, string> = Object.fromEntries(
    [...set.policies.values()].map((policy) => [policy.id, policy.text]),
  );
  const answer = preparsePolicySet(slot, { staticPolicies });
  if (answer.type === "failure") {
    throw new PolicyLoadError(
      answer.errors.map((error) => ({
        file: undefined,
        policyId: undefined,
        message: error.message,
      })),
    );
  }
  return { slot, set, decisions: new Map() };
}

/** The remembered evaluation for `key`, now the most recently used. */
function recall(
  decisions: Map<string, PolicyEvaluation>,
  key: string,
): PolicyEvaluation | undefined {
  const found = decisions.get(key);
  if (found !== undefined) {
    // A Map iterates in insertion order: inserting again makes it the youngest.
    decisions.delete(key);
    decisions.set(key, found);
  }
  return found;
}

/** Remembers `evaluation`, dropping the least recently used one when full. */
function remember(
  decisions: Map<string, PolicyEvaluation>,
  key: string,
  evaluation: PolicyEvaluation,
  limit: number,
): void {
  if (decisions.size >= limit) {
    const oldest = decisions.keys().next();
    if (oldest.done !== true) decisions.delete(oldest.value);
  }
  decisions.set(key, evaluation);
}

/**
 * A deeply frozen copy. A remembered evaluation is handed to every caller who asks
 * the same question, so none may change it; every evaluation is frozen, cached or
 * not, so callers behave alike either way. Copying first leaves the arrays the
 * policy terms own (such as source-IP lists) to the policy set.
 */
function frozenCopy<T>(value: T): T {
  if (Array.isArray(value)) return Object.freeze(value.map((item) => frozenCopy(item))) as T;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).map(([name, item]) => [name, frozenCopy(item)]);
    return Object.freeze(Object.fromEntries(entries)) as T;
  }
  return value;
}

function sortedIds(set: LoadedPolicySet): string[] {
  return [...set.policies.keys()].sort();
}

/**
 * Refuses a set in which a permit escalates at or after the approval timeout
 * it would get from the server's default (it sets none of its own): its
 * requests would expire before anyone was told. A policy's own timeout is
 * checked with its annotations; a shorter one from another permit can only be
 * met when a request is decided, and that decision drops the escalation.
 */
function checkEscalations(set: LoadedPolicySet, defaults: PolicyDefaults): LoadedPolicySet {
  const problems = [...set.policies.values()].flatMap((policy) => {
    const { escalation, approvalTimeoutSeconds } = policy.terms;
    if (escalation === undefined || approvalTimeoutSeconds !== undefined) return [];
    if (escalation.afterSeconds < defaults.approvalTimeoutSeconds) return [];
    return [
      {
        file: policy.file,
        policyId: policy.id,
        message:
          `@escalate_after must be less than the default approval timeout ` +
          `(${defaults.approvalTimeoutSeconds} s), got "${escalation.afterSeconds}": ` +
          "the request would expire first; lower it or give the policy a longer @approval_timeout",
      },
    ];
  });
  if (problems.length > 0) throw new PolicyLoadError(problems);
  return set;
}

function checkDefaults(defaults: PolicyDefaults): void {
  for (const name of ["ttlSeconds", "approvalTimeoutSeconds"] as const) {
    const value = defaults[name];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`defaults.${name} must be a positive integer, got ${String(value)}`);
    }
  }
}
