export type { PolicyTerms } from "./annotations.js";
export { MAX_QUORUM } from "./annotations.js";
export type {
  CedarPolicyEngine,
  CedarPolicyEngineOptions,
  PolicyEvaluation,
  PolicyEvaluationError,
  PolicyReloadInfo,
} from "./cedar-engine.js";
export { createCedarPolicyEngine } from "./cedar-engine.js";
export type { PolicyDefaults } from "./decision-rules.js";
export type { LoadedPolicy, LoadedPolicySet, PolicyProblem } from "./policy-set.js";
export { loadPolicySet, PolicyLoadError } from "./policy-set.js";
export type { PolicyTestFailure, PolicyTestOptions, PolicyTestResult } from "./policy-test.js";
export {
  PolicyTestFileError,
  type PolicyTestFileErrorCode,
  runPolicyTests,
} from "./policy-test.js";
